"""What the job page says, from a job's API view and a clock: wording, timings, progress, errors, chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import render_template

from engine import catalog
from engine.settings import Settings
from web import create_app, humanize, presentation
from web.charts import LABEL_CHARS, MIN_PERCENT, ROW_HEIGHT, bar_chart

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def view(status: str, **fields) -> dict:
    base = {
        "id": "job-1", "type": "count_words_at_url", "params": {"url": "https://example.com/", "top": 3},
        "status": status, "created_at": iso(0), "enqueued_at": iso(0), "started_at": None, "ended_at": None,
        "progress": None, "result": None, "error": None,
    }
    return {**base, **fields}


def present(data: dict, seconds_later: float = 0, origin: str = "default", meta: dict | None = None,
            queue: presentation.QueueState | None = None):
    return presentation.present(data, origin, meta or {}, T0 + timedelta(seconds=seconds_later), queue)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "under 0.1 s"), (0.04, "under 0.1 s"), (0.4, "0.4 s"), (1.23, "1.2 s"), (9.94, "9.9 s"), (12.7, "12 s"),
     (60, "1 min"), (125, "2 min 5 s"), (3600, "1 h"), (3720, "1 h 2 min"), (90061, "1 d 1 h"), (-5, "under 0.1 s")],
)
def test_durations_read_like_people_say_them(seconds, text):
    assert humanize.duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.5, "just now"), (5, "5 s ago"), (59, "59 s ago"), (61, "1 min ago"), (7200, "2 h ago"),
     (86400, "1 day ago"), (3 * 86400 + 5, "3 days ago")],
)
def test_ages(seconds, text):
    assert humanize.age(T0, T0 + timedelta(seconds=seconds)) == text


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KB"), (12_600, "12.3 KB"), (5 * 1024**2, "5.0 MB"),
     (3 * 1024**4, "3072.0 GB")],
)
def test_sizes(count, text):
    assert humanize.size(count) == text


def test_chart_scales_bars_to_the_largest_value():
    chart = bar_chart([("the", 40), ("cat", 10), ("x", 0)])
    assert [bar.percent for bar in chart.bars] == [100.0, 25.0, MIN_PERCENT]
    assert chart.height == 3 * ROW_HEIGHT
    assert [bar.text_y for bar in chart.bars] == [15, 15 + ROW_HEIGHT, 15 + 2 * ROW_HEIGHT]
    assert chart.bars[0].value_text == "40"


def test_chart_cuts_long_labels_and_handles_no_rows():
    long = "w" * (LABEL_CHARS + 10)
    assert bar_chart([(long, 1)]).bars[0].label == "w" * (LABEL_CHARS - 1) + "…"
    assert bar_chart([]).bars == () and bar_chart([]).height == 0


def test_queued_job_waits_and_can_be_canceled():
    job = present(view("queued"), seconds_later=3)
    assert (job.status_label, job.terminal, job.can_cancel, job.can_retry) == ("Queued", False, True, False)
    assert job.summary == "Waiting in the queue for 3.0 s."
    assert [(s.name, s.state, s.note) for s in job.steps] == [
        ("Queued", "current", "waiting for 3.0 s"), ("Started", "pending", ""), ("Finished", "pending", "")]
    assert job.progress is None and job.error is None


def test_running_job_shows_bytes_of_total():
    data = view("started", started_at=iso(2), progress={"stage": "downloading", "bytes": 1024, "total": 4096})
    job = present(data, seconds_later=5)
    assert job.summary == "Running for 3.0 s, after waiting 2.0 s in the queue."
    assert job.progress == presentation.ProgressView("Downloading the page", 1024, 4096, "1.0 KB of 4.0 KB (25%)")
    assert job.steps[1].state == "current" and job.steps[1].note == "running for 3.0 s"
    assert job.can_cancel


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"stage": "downloading", "bytes": 0, "total": None}, ("Downloading the page", None, None, "Starting…")),
        ({"stage": "downloading", "bytes": 2048, "total": None}, ("Downloading the page", None, None, "2.0 KB so far")),
        ({"stage": "counting", "bytes": 10, "total": 10}, ("Counting words", 10, 10, "10 B of 10 B (100%)")),
        ({"stage": "resizing", "bytes": 9, "total": 3}, ("Resizing", 3, 3, "3 B of 3 B (100%)")),
        (None, ("Starting", None, None, "Starting…")),
    ],
)
def test_progress_is_indeterminate_until_the_total_is_known(raw, expected):
    progress = presentation.progress(raw, catalog.CATALOG["count_words_at_url"].stages)
    assert (progress.label, progress.value, progress.maximum, progress.text) == expected


def test_finished_word_count_has_chart_and_totals():
    result = {"url": "https://example.com/", "final_url": "https://www.example.com/", "bytes": 2048,
              "total_words": 12345, "unique_words": 3,
              "top_words": [{"word": "the", "count": 9}, {"word": "cat", "count": 3}]}
    job = present(view("finished", started_at=iso(0.3), ended_at=iso(1.5), result=result), seconds_later=9)
    assert job.summary == "Took 1.2 s, after waiting 0.3 s in the queue."
    assert [(s.name, s.note) for s in job.steps] == [
        ("Queued", "waited 0.3 s in the queue"), ("Started", "took 1.2 s"), ("Finished", "1.5 s in all")]
    assert job.result_template == "jobs/count_words_at_url.html" and job.result == result
    assert job.result_items is None and not job.can_cancel and not job.can_retry and job.terminal
    assert job.params == [("url", "Page URL", "https://example.com/"), ("top", "Top words", "3")]
    html = render_result(job)
    assert '<dd id="total-words">12,345</dd>' in html and "<dd>2.0 KB</dd>" in html
    assert 'Redirected to <a href="https://www.example.com/"' in html
    assert html.count('class="bar-label"') == 2 and '>the</text>' in html and '>cat</text>' in html
    assert '<td class="word">the</td><td class="num">9</td>' in html


def render_result(job: presentation.JobDisplay) -> str:
    """The job's own result template, rendered as the job page includes it."""
    app = create_app({"SETTINGS": Settings.from_env({"APP_ENV": "testing"})})
    with app.test_request_context():
        return render_template(job.result_template, job=job)


def test_result_template_skips_malformed_rows_and_shows_no_chart_without_words():
    result = {"url": "https://example.com/", "total_words": 0, "top_words": [{"word": "x"}, "junk", 3]}
    html = render_result(present(view("finished", started_at=iso(0), ended_at=iso(1), result=result)))
    assert "The page has no words to count." in html and 'class="bar-label"' not in html


def test_failed_job_explains_in_plain_words_and_offers_try_again():
    error = {"type": "HttpClientError", "message": "the server answered 404 Not Found"}
    job = present(view("failed", started_at=iso(0), ended_at=iso(0.5), error=error))
    assert job.error == presentation.ErrorView(
        "The site refused to give us the page.", "The server answered 404 Not Found", "HttpClientError")
    assert job.summary.startswith("Ran for 0.5 s")
    assert job.can_retry and not job.can_cancel


def test_unknown_error_types_still_read_plainly():
    assert presentation.error({"type": "Weird", "message": ""}).headline == "The job failed."
    assert presentation.error(None) is None


def test_a_job_waiting_to_retry_says_the_last_attempt_failed():
    meta = {"failures": 2, "error": {"type": "FetchTimeout", "message": "too slow"}}
    job = present(view("scheduled"), meta=meta)
    assert job.notice == "Attempt 2 failed (too slow); it will be tried again."
    assert present(view("finished"), meta=meta).notice is None


def test_canceled_job_can_be_tried_again_and_has_no_times_to_invent():
    job = present(view("canceled"))
    assert job.summary == "Canceled before it ran."
    assert job.can_retry and job.terminal


def test_other_job_types_get_a_generic_result_view():
    data = view("finished", type="send_email", params={"to": ["a@x.org"], "subject": "Hi"},
                result={"sent": 1, "ids": ["m1", "m2"], "note": "<b>ok</b>"})
    job = present(data)
    assert job.title == "Send email" and job.url is None and job.result_template is None
    assert job.result_items == [
        ("Sent", "1", False), ("Ids", '[\n  "m1",\n  "m2"\n]', True), ("Note", "<b>ok</b>", False)]
    assert ("to", "To", '[\n  "a@x.org"\n]') in job.params


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", None, 42])
def test_only_http_urls_become_links(url):
    assert present(view("queued", params={"url": url})).url is None


def test_priority_reads_as_a_word():
    assert present(view("queued"), origin="high").priority == "High"
    assert present(view("queued"), origin="default").priority == "Normal"


@pytest.mark.parametrize(
    ("ahead", "text"), [(None, "3.0 s."), (0, "3.0 s."), (1, "3.0 s. 1 job is ahead of it."),
                        (4, "3.0 s. 4 jobs are ahead of it.")],
)
def test_a_queued_job_says_how_many_are_ahead(ahead, text):
    job = present(view("queued"), seconds_later=3, queue=presentation.QueueState(ahead, workers=1))
    assert job.summary.endswith(text)
    assert job.notice is None


def test_a_queued_job_with_no_worker_says_so():
    job = present(view("queued"), origin="low", queue=presentation.QueueState(0, workers=0))
    assert job.notice == "No worker is serving the Low queue right now; the job starts as soon as one does."
    running = present(view("started", started_at=iso(1)), queue=presentation.QueueState(None, workers=0))
    assert running.notice is None


def test_very_long_urls_are_cut_in_the_middle_for_display_only():
    url = "https://example.com/" + "a" * 300 + "/end"
    job = present(view("queued", params={"url": url}))
    assert job.url == url
    assert len(job.url_text) == presentation.URL_CHARS
    assert job.url_text.startswith("https://example.com/aaa") and job.url_text.endswith("a/end") and "…" in job.url_text
    assert present(view("queued")).url_text == "https://example.com/"


@pytest.mark.parametrize("params", [None, ["not", "a", "dict"], "text"])
def test_a_job_whose_params_cannot_be_read_still_renders_and_cannot_be_retried(params):
    job = present(view("failed", params=params, error={"type": "ForbiddenJob", "message": "not run"}))
    assert job.params == [] and job.url is None
    assert job.error.headline == "This job is not one we run."
    assert job.can_retry is False
