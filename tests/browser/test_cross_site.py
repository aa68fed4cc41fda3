"""A page on another origin, in a real Chromium, tries to change things through the API with a visitor's browser.

Every state-changing API call needs Content-Type: application/json, which a browser sends cross-origin only after
a CORS preflight; the API never approves one. So the simple requests a page may send (text/plain, forms) arrive
and are refused with 415, and the JSON one is never sent.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.browser.conftest import api, fill_login

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ATTACK = """<!doctype html><html><body>
<form id="form" method="post" enctype="text/plain" action="{cancel}">
  <input name='{{"x":"' value='"}}'>
</form>
<script>
window.results = {{}};
async function attack() {{
  const body = JSON.stringify({{type: "count_words_at_url", params: {{url: "https://example.com/"}}}});
  await fetch("{cancel}", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}}, body: "{{}}"}})
    .then(() => results.simple = "sent", (e) => results.simple = "error " + e);
  await fetch("{submit}", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}}, body}})
    .then(() => results.submit = "sent", (e) => results.submit = "error " + e);
  await fetch("{cancel}", {{method: "POST", headers: {{"Content-Type": "application/json"}}, body: "{{}}"}})
    .then((r) => results.json = "answered " + r.status, (e) => results.json = "blocked");
  results.done = true;
}}
attack();
</script></body></html>"""


def refused_posts(stack, path: str) -> int:
    """How many POSTs to ``path`` the web log shows answered 415."""
    return len(re.findall(rf'"POST {re.escape(path)} HTTP/1.1" 415', stack.web_log.read_text(errors="replace")))


def test_a_page_on_another_origin_cannot_cancel_or_submit(page, stack):
    job = api(stack, "POST", "/api/jobs", {"type": "count_words_at_url", "params": {"url": "https://example.com/"},
                                           "delay_seconds": 600})
    cancel_path = f"/api/jobs/{job['id']}/cancel"
    evil = stack.pages.add("/evil", ATTACK.format(cancel=stack.url(cancel_path), submit=stack.url("/api/jobs"))
                           .encode())
    assert not evil.startswith(stack.base_url)  # another origin: another port
    page.goto(evil)
    page.wait_for_function("window.results.done === true")
    results = page.evaluate("window.results")
    assert results["simple"] == "sent" and results["submit"] == "sent"  # no-cors requests do leave the browser
    assert results["json"] == "blocked"  # the preflight found no approval: the POST was never sent
    with page.expect_navigation():
        page.evaluate("document.getElementById('form').submit()")  # a plain form post from the other site
    assert "unsupported_media_type" in page.content()
    deadline = time.monotonic() + 10
    while refused_posts(stack, cancel_path) < 2 and time.monotonic() < deadline:  # the fetch and the form
        time.sleep(0.1)
    assert refused_posts(stack, cancel_path) == 2, stack.logs()
    assert refused_posts(stack, "/api/jobs") == 1, stack.logs()
    assert api(stack, "GET", f"/api/jobs/{job['id']}")["status"] == "scheduled"
    api(stack, "POST", cancel_path, {})  # the same call from a script, with the JSON type, works
    assert api(stack, "GET", f"/api/jobs/{job['id']}")["status"] == "canceled"


def test_a_phishing_login_link_keeps_the_operator_on_this_site(open_browser, stack):
    """The login's next, followed by a real browser: every known bypass lands on this site's home page."""
    evil = stack.pages.add("/phish", b"<!doctype html><title>evil</title><p>phished</p>")
    host = evil.removeprefix("http://").removesuffix("/phish")  # 127.0.0.1:<another port>
    page = open_browser().new_page()
    for target in (f"/%09/{host}/phish", f"/%0D%0A/{host}/phish", f"//{host}/phish", f"/%5C{host}/phish",
                   f"%5C%5C{host}/phish", f"http://{host}/phish", f"/%09%09/{host}/phish"):
        page.goto(stack.url(f"/login?next={target}"))
        fill_login(page)
        page.wait_for_load_state()
        assert page.url == stack.url("/"), (target, page.url)
        page.get_by_role("button", name="Log out").click()
