"""The web UI in headless Chromium, against gunicorn, a real worker process and the session's redis-server.

Pages that "hold" their response (tests/browser/pages.py) keep a job in its download stage while the test
looks at it, so every state is reached by events, never by sleeping.
"""

from __future__ import annotations

import re

import pytest
import urllib3
from playwright.sync_api import expect

from engine import catalog
from engine.errors import headline
from tests.browser.conftest import PHONE, fill_login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration]

catalog.load()  # job modules define their error classes, and so their headlines
expect.set_options(timeout=30_000)  # the machine is shared: generous, and only ever waited out on failure
JOB_URL = re.compile(r"/jobs/[\w-]+$")
GATE_WAIT = 30.0

ARTICLE = (
    b"<!doctype html><html><head><title>Background jobs</title><style>p{margin:0}</style></head><body>"
    b"<h1>Why background jobs?</h1>"
    b"<p>A web request should answer in a moment. Work that takes longer, such as fetching a page and counting "
    b"its words, goes to a queue. A worker takes the job from the queue, runs it, and stores the result.</p>"
    b"<p>The web page then shows the job: queued, running, finished. While the job runs, the page shows its "
    b"progress, so the user never stares at a spinner. When the job is finished, the page shows the words the "
    b"page uses most, as a chart and as a table.</p>"
    b"<p>If the job fails, the page says why in plain words, and the user can try again.</p>"
    b"<script>var the = 'not counted';</script></body></html>"
)


def submit_form(page, stack, url: str, top: int | None = None, priority: str | None = None) -> str:
    """Fill the home page form, submit it, and return the new job's id from the page it lands on."""
    page.goto(stack.url("/"))
    page.get_by_label("Page URL").fill(url)
    if top is not None:
        page.get_by_label("Top words").fill(str(top))
    if priority is not None:
        page.get_by_label("Priority").select_option(priority)
    page.get_by_role("button", name="Count words").click()
    page.wait_for_url(JOB_URL)
    return page.url.rsplit("/", 1)[1]


def submit_api(page, stack, url: str, top: int = 10) -> str:
    response = page.request.post(
        stack.url("/api/jobs"), data={"type": "count_words_at_url", "params": {"url": url, "top": top}}
    )
    assert response.status == 202, response.text()
    return response.json()["id"]


def api_job(page, stack, job_id: str) -> dict:
    return page.request.get(stack.url(f"/api/jobs/{job_id}")).json()


def hold_the_worker(page, stack, name: str):
    """Start a job whose page is held, so the (single) worker is busy until the returned gate is released."""
    url, gate = stack.pages.add_gated(f"/{name}", ARTICLE)
    job_id = submit_api(page, stack, url)
    assert gate.requested.wait(GATE_WAIT), stack.logs()
    return job_id, gate


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_job_page_updates_itself_from_queued_to_progress_to_chart(page, stack):
    _, blocker = hold_the_worker(page, stack, "blocker-live")
    url, gate = stack.pages.add_gated("/article-live", ARTICLE)
    job_id = submit_form(page, stack, url, top=10, priority="high")
    page.evaluate("window.sameDocument = true")  # survives only if the page is never reloaded
    status = page.locator("#status")
    expect(status).to_have_text("Queued")
    expect(status).to_have_attribute("aria-live", "polite")
    expect(page.locator("#progress")).to_be_hidden()
    expect(page.locator("#summary")).to_contain_text("Waiting in the queue")

    blocker.release()
    assert gate.requested.wait(GATE_WAIT), stack.logs()
    expect(status).to_have_text("Running")
    expect(page.locator("#progress")).to_be_visible()
    expect(page.locator("#progress")).to_contain_text("Downloading the page")
    expect(page.locator("#summary")).to_contain_text("Running for")
    screenshot(page, "job-running")

    gate.release()
    expect(status).to_have_text("Finished")
    job = api_job(page, stack, job_id)
    assert job["status"] == "finished", stack.logs()
    result = job["result"]
    expect(page.locator("#total-words")).to_have_text(f"{result['total_words']:,}")
    expect(page.locator("#unique-words")).to_have_text(f"{result['unique_words']:,}")
    expect(page.locator("svg.bars rect.bar")).to_have_count(10)
    rows = page.locator("#top-words tr")
    expect(rows).to_have_count(10)
    top = result["top_words"][0]
    expect(rows.first).to_contain_text(top["word"])
    expect(page.locator("svg.bars .bar-label").first).to_have_text(top["word"])
    expect(page.locator("#progress")).to_be_hidden()
    expect(page.locator("#summary")).to_have_text(re.compile(r"^Took [\d.]+ s, after waiting [\d.]+ s in the queue\."))
    # Updated in place: one status, three steps, the same document all along.
    expect(page.locator("#status")).to_have_count(1)
    expect(page.locator(".steps li")).to_have_count(3)
    assert page.evaluate("window.sameDocument") is True
    expect(page).to_have_title(re.compile(r"^Finished"))
    screenshot(page, "job-finished")


@pytest.mark.parametrize(
    ("url", "message"),
    [("", "Please fill in this field."), ("not a url", "The URL contains spaces")],
)
def test_invalid_url_shows_the_message_next_to_the_field(page, stack, url, message):
    page.goto(stack.url("/"))
    page.get_by_label("Page URL").fill(url)
    page.get_by_role("button", name="Count words").click()
    error = page.locator("#field-url-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text(message)
    expect(page.get_by_label("Page URL")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Page URL")).to_have_value(url)
    assert not JOB_URL.search(page.url)


def test_failed_job_shows_its_error_and_try_again_submits_a_new_job(page, stack):
    url = stack.pages.add("/download.bin", b"\x00\x01 not text", content_type="application/octet-stream")
    job_id = submit_form(page, stack, url)
    expect(page.locator("#status")).to_have_text("Failed")
    job = api_job(page, stack, job_id)
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error.locator("h2")).to_have_text(headline(job["error"]["type"]))
    expect(error).to_contain_text(job["error"]["message"], ignore_case=True)
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    try_again = page.get_by_role("button", name="Try again")
    expect(try_again).to_be_visible()
    screenshot(page, "job-failed")

    try_again.click()
    page.wait_for_url(JOB_URL)
    new_id = page.url.rsplit("/", 1)[1]
    assert new_id != job_id
    expect(page.locator("#status")).to_have_text("Failed")
    assert api_job(page, stack, new_id)["params"] == job["params"]


def test_recent_jobs_list_links_to_job_pages_and_keeps_its_badges_current(page, stack):
    first_url, gate = stack.pages.add_gated("/recent-one", ARTICLE)
    first = submit_form(page, stack, first_url)  # the list holds the jobs this browser submitted
    assert gate.requested.wait(GATE_WAIT), stack.logs()
    second = submit_form(page, stack, stack.pages.add("/recent-two", ARTICLE))  # waits behind the first
    elsewhere = submit_api(page, stack, stack.pages.add("/recent-elsewhere", ARTICLE))  # not from this browser
    page.goto(stack.url("/"))
    expect(page.locator(".recent-list li")).to_have_count(2)
    expect(page.locator(f'.recent-list a[href="/jobs/{elsewhere}"]')).to_have_count(0)
    page.evaluate("window.sameDocument = true")
    expect(page.locator(".recent-list li").first).to_contain_text("/recent-two")  # newest first
    link = page.locator(f'.recent-list a[href="/jobs/{first}"]')
    expect(link).to_contain_text(first_url)
    expect(link.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    expect(link.locator(".badge")).to_have_text("Running")
    expect(page.locator(f'.recent-list a[href="/jobs/{second}"] .badge')).to_have_text("Queued")

    gate.release()
    expect(link.locator(".badge")).to_have_text("Finished")
    expect(page.locator(f'.recent-list a[href="/jobs/{second}"] .badge')).to_have_text("Finished")
    assert page.evaluate("window.sameDocument") is True
    screenshot(page, "home")
    link.click()
    page.wait_for_url(stack.url(f"/jobs/{first}"))
    expect(page.locator(".job-url")).to_have_text(first_url)


def test_dashboard_link_asks_for_the_operator_login(page, stack):
    page.goto(stack.url("/"))
    page.get_by_role("link", name="Dashboard").click()
    expect(page.locator("h1")).to_have_text("Operator login")
    fill_login(page)
    page.wait_for_url(stack.url("/rq/"))
    expect(page.locator("body")).to_contain_text("Queues")


def test_job_page_refreshes_itself_without_javascript(open_browser, stack):
    page = open_browser(java_script_enabled=False).new_page()
    url, gate = stack.pages.add_gated("/article-nojs", ARTICLE)
    submit_form(page, stack, url, top=10)
    assert gate.requested.wait(GATE_WAIT), stack.logs()
    expect(page.locator("#status")).to_have_text(re.compile("Queued|Running"))
    expect(page.locator('meta[http-equiv="refresh"]')).to_have_count(1)
    gate.release()
    expect(page.locator("#status")).to_have_text("Finished")  # only a reload can bring this without script
    expect(page.locator("svg.bars rect.bar")).to_have_count(10)
    expect(page.locator('meta[http-equiv="refresh"]')).to_have_count(0)


def test_cancel_a_queued_job_and_stop_a_running_one(page, stack):
    running_id, blocker = hold_the_worker(page, stack, "blocker-cancel")
    submit_form(page, stack, stack.pages.add("/never-run", ARTICLE))
    expect(page.locator("#status")).to_have_text("Queued")
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator(".flash")).to_have_text("The job was canceled.")
    expect(page.locator("#status")).to_have_text("Canceled")
    expect(page.get_by_role("button", name="Try again")).to_be_visible()

    page.goto(stack.url(f"/jobs/{running_id}"))
    expect(page.locator("#status")).to_have_text("Running")
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#status")).to_have_text("Stopped")
    expect(page.locator("#error h2")).to_have_text(headline("Stopped"))
    blocker.release()


MARKUP = "<script>alert(1)</script><svg/onload=alert(2)>"


def test_markup_in_an_accepted_url_is_shown_as_text(page, stack):
    dialogs = watch_dialogs(page)
    url = stack.pages.url("/markup?q=" + MARKUP)
    stack.pages.add(urllib3.util.parse_url(url).request_uri, ARTICLE)  # the worker asks for it percent-encoded
    submit_form(page, stack, url)
    expect(page.locator(".job-url")).to_have_text(url)
    expect(page.locator("#status")).to_have_text("Finished")
    assert_no_markup_ran(page, dialogs)
    page.goto(stack.url("/"))
    expect(page.locator(".recent-list li").first).to_contain_text(url)
    assert_no_markup_ran(page, dialogs)


def test_markup_in_a_refused_url_is_shown_as_text(page, stack):
    dialogs = watch_dialogs(page)
    url = stack.pages.url("/x?q=" + MARKUP + " <img src=x onerror=alert(3)>")  # the space gets it refused
    page.goto(stack.url("/"))
    page.get_by_label("Page URL").fill(url)
    page.get_by_role("button", name="Count words").click()
    expect(page.locator("#field-url-error")).to_contain_text("spaces")
    expect(page.get_by_label("Page URL")).to_have_value(url)
    assert not JOB_URL.search(page.url)
    assert_no_markup_ran(page, dialogs)


def watch_dialogs(page) -> list[str]:
    """The messages of every alert() the page opens (dismissed at once)."""
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    return dialogs


def assert_no_markup_ran(page, dialogs: list[str]) -> None:
    """None of the URL's markup became elements, and no script it carried ran."""
    assert page.locator("script:not([src])").count() == 0
    assert page.locator("svg[onload], img[onerror]").count() == 0
    assert dialogs == []


def test_job_page_says_when_it_loses_the_server_and_recovers(page, stack):
    url, gate = stack.pages.add_gated("/article-offline", ARTICLE)
    submit_form(page, stack, url)
    assert gate.requested.wait(GATE_WAIT), stack.logs()
    page.route("**/panel", lambda route: route.fulfill(status=503, body="down"))
    note = page.locator("#poll-note")
    expect(note).to_have_text("Lost contact with the server; retrying…")
    gate.release()
    page.unroute("**/panel")
    expect(page.locator("#status")).to_have_text("Finished")
    expect(note).to_be_hidden()


def test_layout_holds_at_phone_width(open_browser, stack):
    page = open_browser(viewport=PHONE, is_mobile=True).new_page()
    long_path = "/article-phone/" + "a-very-long-path-segment-" * 12  # a URL far wider than the screen
    job_id = submit_form(page, stack, stack.pages.add(long_path, ARTICLE), top=8)
    expect(page.locator("#status")).to_have_text("Finished")
    expect(page.locator("svg.bars rect.bar")).to_have_count(8)
    assert no_horizontal_scroll(page)
    screenshot(page, "job-finished-phone")
    page.goto(stack.url("/"))
    expect(page.locator(f'.recent-list a[href="/jobs/{job_id}"]')).to_be_visible()
    assert no_horizontal_scroll(page)
