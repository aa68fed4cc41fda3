"""rq-dashboard at /rq in headless Chromium, behind its login, against gunicorn and a real worker process.

The tables are built in the browser (underscore templates), so the assertions are on their ROWS: a queue row
with its count, a job row with the job's id, a worker row with the job it is running. Any console error,
uncaught page error or Content-Security-Policy violation fails the test.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import api, fill_login, log_in

pytestmark = [pytest.mark.browser, pytest.mark.integration]

GATE_WAIT = 30.0
ARTICLE = b"<!doctype html><html><body><p>The dashboard shows the queue, the job and the worker.</p></body></html>"

# Every violation is reported twice over: kept on the window and logged as a console error.
REPORT_CSP = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  const text = `CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${where})`;
  window.__cspViolations.push(text);
  console.error(text);
});
"""


def submit(stack, url: str) -> str:
    return api(stack, "POST", "/api/jobs", {"type": "count_words_at_url", "params": {"url": url}})["id"]


def wait_status(stack, job_id: str, wanted: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = api(stack, "GET", f"/api/jobs/{job_id}")
        if job["status"] == wanted or time.monotonic() > deadline:
            assert job["status"] == wanted, (job, stack.logs())
            return job
        time.sleep(0.1)


@pytest.fixture
def dashboard(open_browser, stack):
    """A logged-in dashboard page that records every console error, page error and CSP violation."""
    context = open_browser()
    context.add_init_script(REPORT_CSP)
    page = context.pages[0] if context.pages else context.new_page()
    log_in(page, stack, "/rq/")
    problems: list[str] = []
    page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
            if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.problems = problems
    yield page
    assert problems == []


def no_problems(page) -> None:
    assert page.evaluate("window.__cspViolations") == []
    assert page.problems == []


def test_dashboard_tables_fill_in_and_its_actions_work(dashboard, stack):
    page = dashboard
    failed = submit(stack, stack.pages.url("/no-such-page"))  # the page server answers 404: a permanent failure
    wait_status(stack, failed, "failed")
    running_url, gate = stack.pages.add_gated("/dashboard-running", ARTICLE)
    running = submit(stack, running_url)
    assert gate.requested.wait(GATE_WAIT), stack.logs()
    waiting = submit(stack, stack.pages.add("/dashboard-waiting", ARTICLE))  # the only worker is busy
    try:
        # Queues: the default queue's row counts the waiting job and the failed one.
        page.goto(stack.url("/rq/"))
        row = page.locator("#queues tr[data-role=queue]", has=page.locator("td:first-child", has_text="default"))
        expect(row).to_have_count(1)
        cells = row.locator("td")
        expect(cells.nth(1)).to_have_text("1")  # queued
        expect(cells.nth(4)).to_have_text("1")  # started
        expect(cells.nth(6)).to_have_text("1")  # failed
        expect(page.locator("#queues [data-role=loading-placeholder]")).to_have_count(0)
        no_problems(page)

        # Workers: a row for the running worker, naming the job it runs.
        page.goto(stack.url("/rq/0/view/workers"))
        worker = page.locator("#workers tr[data-role=worker]")
        expect(worker).to_have_count(1)
        expect(worker.locator(f'a[href$="/view/job/{running}"]')).to_be_visible()
        expect(worker).to_contain_text("default")
        no_problems(page)

        # Jobs: the queued job's row carries its id; its own page shows it.
        page.goto(stack.url("/rq/0/view/jobs/default/queued/8/asc/1"))
        job_row = page.locator(f'#jobs tr[data-role=job][data-job-id="{waiting}"]')
        expect(job_row).to_be_visible()
        expect(job_row.locator(".job_id")).to_have_text(waiting)
        job_row.locator(".job_id a").click()
        expect(page.locator("h2")).to_contain_text(waiting)
        expect(page.locator("#job-data")).to_contain_text("/dashboard-waiting")  # filled in by its template
        expect(page.locator("#job-data")).to_contain_text("Status:queued")
        no_problems(page)

        # Delete (POST with the CSRF token, after the confirmation dialog): the job is gone.
        page.locator("#delete-job-btn").click()
        page.locator("#confirmation-modal-yes").click()
        page.wait_for_url(re.compile(r"/rq/(0/view/queues)?$"))  # back to the queues
        with pytest.raises(urllib.error.HTTPError) as gone:
            api(stack, "GET", f"/api/jobs/{waiting}")
        assert gone.value.code == 404
        gone.value.close()  # its socket, else a ResourceWarning fails whichever test the collector runs in
        no_problems(page)

        # Requeue a failed job from the failed list: it leaves the list and waits in its queue again.
        page.goto(stack.url("/rq/0/view/jobs/default/failed/8/asc/1"))
        failed_row = page.locator(f'#jobs tr[data-role=job][data-job-id="{failed}"]')
        expect(failed_row.locator(".exc_info")).not_to_be_empty()
        failed_row.locator("[data-role=requeue-job-btn]").click()
        expect(failed_row).to_have_count(0)
        assert api(stack, "GET", f"/api/jobs/{failed}")["status"] == "queued"
        no_problems(page)
    finally:
        gate.release()
    wait_status(stack, running, "finished")


def test_dashboard_asks_for_the_operator_login_and_logout_closes_it(open_browser, stack):
    context = open_browser()
    page = context.pages[0] if context.pages else context.new_page()
    page.goto(stack.url("/rq/0/view/workers"))
    expect(page.locator("h1")).to_have_text("Operator login")  # the pages' own login, no Basic dialog
    fill_login(page)
    page.wait_for_url(stack.url("/rq/0/view/workers"))
    expect(page.locator("#workers")).to_be_visible()
    page.goto(stack.url("/"))
    page.get_by_role("button", name="Log out").click()
    page.goto(stack.url("/rq/"))
    expect(page.locator("h1")).to_have_text("Operator login")
    for path in ("/rq/0/data/queues.json", "/rq/0/data/workers.json"):
        response = context.request.get(stack.url(path), max_redirects=0)
        assert response.status == 303 and response.headers["location"].startswith("/login?next=")
