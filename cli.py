"""Command line for the job stack: submit, status, cancel, list, requeue-failed, purge, stats. Needs only REDIS_URL.

    python -m cli submit https://example.com/ --wait          (values fill the job's parameters in order)
    python -m cli submit --type TYPE --top 5 --param name=value --priority high
    python -m cli status <id> [--wait]
    python -m cli cancel <id>
    python -m cli list --status failed
    python -m cli requeue-failed --queue default --error-type FetchTimeout
    python -m cli purge --older-than 3 --status failed [--dry-run]
    python -m cli stats

Every command takes --json for scripts. Exit status: 0 done, 1 the job failed or was not found or not cancelable,
2 bad arguments or configuration, 3 Redis unavailable.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from redis import Redis
from redis.exceptions import RedisError
from rq import Worker
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)

from engine import catalog, lifecycle, schedule
from engine.cancel import NotCancelable, cancel_job
from engine.connection import connect
from engine.enqueue import RECENT_KEY
from engine.errors import InvalidRequest
from engine.queues import SERIALIZER, CatalogJob, fetch_job, make_queues
from engine.settings import QUEUE_NAMES, ConfigError, Settings
from engine.status import TERMINAL, job_view

SUBMIT_OPTIONS = frozenset({"type", "param", "priority", "delay", "at", "idempotency_key", "wait", "timeout", "json"})
REGISTRIES = {
    "started": StartedJobRegistry, "scheduled": ScheduledJobRegistry, "deferred": DeferredJobRegistry,
    "failed": FailedJobRegistry, "finished": FinishedJobRegistry, "canceled": CanceledJobRegistry,
}


class CliError(Exception):
    """A failure to report to the user: a code for --json, a message, and the exit status."""

    def __init__(self, code: str, message: str, exit_status: int = 1):
        super().__init__(message)
        self.code, self.message, self.exit_status = code, message, exit_status


class Output:
    """Writes either human-readable lines or one JSON document."""

    def __init__(self, as_json: bool, stream: TextIO = sys.stdout):
        self.as_json, self.stream = as_json, stream

    def emit(self, data: Any, human: Callable[[Any], str]) -> None:
        text = json.dumps(data, ensure_ascii=False, indent=2) if self.as_json else human(data)
        print(text, file=self.stream)


# Submission ---------------------------------------------------------------------------------------------------

def submission_from(args: argparse.Namespace) -> tuple[lifecycle.Submission, dict[str, Any]]:
    """The validated submission and the request body it stands for (for Idempotency-Key fingerprints)."""
    type_name = args.type or catalog.default_type().name
    known = catalog.CATALOG.get(type_name)
    names = list(known.schema.model_fields) if known else []
    if len(args.values) > len(names):
        raise CliError("usage", f"{type_name} takes at most {len(names)} values ({', '.join(names)})", 2)
    params: dict[str, Any] = dict(zip(names, args.values, strict=False))
    params.update({name: value for name, value in vars(args).get("params", {}).items() if value is not None})
    for pair in args.param:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError("usage", f"--param takes NAME=VALUE, got {pair!r}", 2)
        params[name] = value  # the schema coerces strings ("5" → 5) the same way as for the API
    body = {"type": type_name, "params": params, "priority": args.priority}
    body.update({k: v for k, v in (("delay_seconds", args.delay), ("at", args.at)) if v is not None})
    try:
        job_type = catalog.get(type_name)
        submission = lifecycle.Submission(
            job_type, job_type.validate(params), lifecycle.parse_priority(args.priority),
            lifecycle.parse_run_at(args.delay, args.at),
        )
    except (catalog.UnknownJobType, catalog.InvalidParams, InvalidRequest) as exc:
        raise CliError("invalid_request", str(exc), 2) from None
    return submission, body


def cmd_submit(connection: Redis, settings: Settings, args: argparse.Namespace, out: Output) -> int:
    submission, body = submission_from(args)
    if args.idempotency_key:
        if not lifecycle.valid_idempotency_key(args.idempotency_key):
            raise CliError("usage", "--idempotency-key must be 1 to 255 printable ASCII characters", 2)
        try:
            job, _ = lifecycle.submit_idempotent(connection, submission, settings, args.idempotency_key,
                                                 submission.fingerprint(body))
        except lifecycle.IdempotencyConflict as exc:
            raise CliError("idempotency_conflict", str(exc)) from None
    else:
        job = lifecycle.submit(connection, submission, settings)
    if not args.wait:
        out.emit(job, describe)
        return 0
    if not args.json:
        print(f"Submitted {job['id']} ({submission.job_type.name}, {submission.priority} priority); waiting…",
              file=sys.stderr)
    return finish(connection, job["id"], args.timeout, out)


# Reading and waiting -------------------------------------------------------------------------------------------

def cmd_status(connection: Redis, settings: Settings, args: argparse.Namespace, out: Output) -> int:
    if args.wait:
        return finish(connection, args.id, args.timeout, out)
    view = job_view(_job(connection, args.id))
    out.emit(view, describe)
    return 0


def finish(connection: Redis, job_id: str, timeout: float | None, out: Output) -> int:
    """Wait for the job to end, showing its progress on stderr, then print it; 0 only if it finished."""
    quiet = out.as_json and not sys.stderr.isatty()  # scripts read JSON on stdout; keep stderr clean too
    show = ProgressLine(sys.stderr)
    deadline = None if timeout is None else time.monotonic() + timeout
    interval = 0.2
    while True:
        view = job_view(_job(connection, job_id))
        if not quiet:
            show.update(view)
        if view["status"] in TERMINAL or (deadline is not None and time.monotonic() >= deadline):
            break
        time.sleep(interval)
        interval = min(interval * 1.3, 1.0)
    show.close()
    out.emit(view, describe)
    return 0 if view["status"] == "finished" else 1


class ProgressLine:
    """A progress bar redrawn in place on a terminal; plain lines, one per change, otherwise."""

    WIDTH = 30

    def __init__(self, stream: TextIO):
        self.stream, self.tty, self.last = stream, stream.isatty(), ""

    def update(self, view: dict[str, Any]) -> None:
        text = self.render(view)
        if text == self.last:
            return
        self.last = text
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def render(self, view: dict[str, Any]) -> str:
        progress = view.get("progress") or {}
        stage = progress.get("stage") or view["status"]
        done, total = progress.get("bytes") or 0, progress.get("total")
        if not self.tty:
            return f"{view['status']}: {stage}"
        if total:
            filled = int(self.WIDTH * min(done, total) / total)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            return f"[{bar}] {100 * min(done, total) // total:3d}% {stage} {_size(done)} / {_size(total)}"
        return f"[{'.' * self.WIDTH}] {stage} {_size(done) if done else ''}".rstrip()

    def close(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()


def describe(view: dict[str, Any]) -> str:
    """A job for people: id, type, status, times, then its result or error."""
    lines = [f"{view['id']}  {view['type']}  {view['status'].upper()}"]
    if view.get("params") is not None:
        lines.append(f"  params:   {json.dumps(view['params'], ensure_ascii=False)}")
    for name in ("created_at", "enqueued_at", "started_at", "ended_at"):
        if view.get(name):
            lines.append(f"  {name.replace('_at', ''):<9} {view[name]}")
    result, error = view.get("result"), view.get("error")
    if error:
        lines.append(f"  error:    {error['type']}: {error['message']}")
    if isinstance(result, dict) and "total_words" in result:
        lines.append(f"  words:    {result['total_words']} total, {result.get('unique_words', '?')} unique")
        top = ", ".join(f"{w['word']} ({w['count']})" for w in result.get("top_words", [])[:10])
        lines.append(f"  top:      {top}")
    elif result is not None:
        lines.append(f"  result:   {json.dumps(result, ensure_ascii=False)}")
    return "\n".join(lines)


# Cancel, list, requeue, stats -----------------------------------------------------------------------------------

def cmd_cancel(connection: Redis, settings: Settings, args: argparse.Namespace, out: Output) -> int:
    job = _job(connection, args.id)
    try:
        target = cancel_job(connection, job)
    except NotCancelable as exc:
        raise CliError("not_cancelable", str(exc)) from None
    job = lifecycle.wait_for(connection, args.id, 5.0) if target == "stopped" else fetch_job(connection, args.id)
    out.emit(job_view(job or _job(connection, args.id)), describe)
    return 0


def cmd_list(connection: Redis, settings: Settings, args: argparse.Namespace, out: Output) -> int:
    try:
        jobs, cursor = lifecycle.list_jobs(connection, args.status, args.type, args.limit, args.cursor)
    except InvalidRequest as exc:
        raise CliError("invalid_request", str(exc), 2) from None
    data = {"jobs": [job_view(job) for job in jobs], "next_cursor": cursor}

    def human(data: dict[str, Any]) -> str:
        rows = [f"{j['id']}  {j['status']:<9}  {j['type'] or '?':<22}  {j['created_at']}" for j in data["jobs"]]
        more = [f"more: --cursor {data['next_cursor']}"] if data["next_cursor"] else []
        return "\n".join(rows + more) or "no jobs"

    out.emit(data, human)
    return 0


def cmd_requeue_failed(connection: Redis, settings: Settings, args: argparse.Namespace, out: Output) -> int:
    requeued: list[str] = []
    for name in args.queue or QUEUE_NAMES:
        registry = FailedJobRegistry(name, connection=connection, job_class=CatalogJob, serializer=SERIALIZER)
        for job_id in registry.get_job_ids():
            if args.error_type:
                job = fetch_job(connection, job_id)
                if job is None or (job.meta.get("error") or {}).get("type") != args.error_type:
                    continue
            try:
                registry.requeue(job_id)
            except (NoSuchJobError, InvalidJobOperation):  # expired since, or another process requeued it first
                continue
            requeued.append(job_id)
    out.emit({"requeued": requeued}, lambda d: f"requeued {len(d['requeued'])} failed job(s)"
             + "".join(f"\n  {job_id}" for job_id in d["requeued"]))
    return 0


PURGEABLE = ("failed", "finished", "canceled")


def cmd_purge(connection: Redis, settings: Settings, args: argparse.Namespace, out: Output) -> int:
    """Delete ended jobs older than --older-than days from the chosen queues and states (before their TTL)."""
    cutoff = time.time() - args.older_than * 86400
    purged: list[str] = []
    for name in args.queue or QUEUE_NAMES:
        for state in args.status or PURGEABLE:
            registry = REGISTRIES[state](name, connection=connection, job_class=CatalogJob, serializer=SERIALIZER)
            ids = registry.get_job_ids()
            for start in range(0, len(ids), 500):  # bounded batches: one round trip per 500 jobs
                chunk = ids[start:start + 500]
                for job_id, job in zip(chunk, CatalogJob.fetch_many(chunk, connection=connection,
                                                                    serializer=SERIALIZER), strict=True):
                    if job is None:
                        registry.remove(job_id)  # already expired: tidy the registry
                        continue
                    ended = job.ended_at or job.created_at
                    if ended.timestamp() <= cutoff:
                        purged.append(job_id)
                        if not args.dry_run:
                            job.delete()
                            connection.zrem(RECENT_KEY, job_id)
    verb = "would purge" if args.dry_run else "purged"
    out.emit({"purged": purged, "dry_run": args.dry_run}, lambda d: f"{verb} {len(d['purged'])} job(s)")
    return 0


def stats(connection: Redis) -> dict[str, Any]:
    """Job counts per queue and state, the workers, the scheduler and the clock."""
    queues = make_queues(connection)
    counts = {}
    for name, queue in queues.items():
        row = {"queued": queue.count}
        for state, registry_class in REGISTRIES.items():
            row[state] = registry_class(name, connection=connection, serializer=SERIALIZER).count
        counts[name] = row
    workers = [
        {"name": w.name, "state": w.get_state(), "queues": w.queue_names(), "job": w.get_current_job_id()}
        for w in Worker.all(connection=connection)
    ]
    scheduler = connection.get("rq:scheduler-lock:default")
    clock = connection.get(schedule.LEADER_KEY)
    return {
        "queues": counts,
        "workers": workers,
        "scheduler": scheduler.decode() if scheduler else None,
        "clock": clock.decode() if clock else None,
    }


def cmd_stats(connection: Redis, settings: Settings, args: argparse.Namespace, out: Output) -> int:
    def human(data: dict[str, Any]) -> str:
        states = ["queued", *REGISTRIES]
        lines = [f"{'queue':<8}" + "".join(f"{s:>10}" for s in states)]
        for name, row in data["queues"].items():
            lines.append(f"{name:<8}" + "".join(f"{row[s]:>10}" for s in states))
        lines.append(f"\nworkers: {len(data['workers'])}")
        for w in data["workers"]:
            lines.append(f"  {w['name']}  {w['state']}  {','.join(w['queues'])}  {w['job'] or ''}".rstrip())
        lines.append(f"scheduler: {data['scheduler'] or 'none running'}")
        lines.append(f"clock:     {data['clock'] or 'none running'}")
        return "\n".join(lines)

    out.emit(stats(connection), human)
    return 0


# Plumbing -------------------------------------------------------------------------------------------------------

def _job(connection: Redis, job_id: str) -> CatalogJob:
    job = fetch_job(connection, job_id)
    if job is None:
        raise CliError("not_found", f"No job {job_id!r}: it expired or never existed.")
    return job


def add_param_options(submit: argparse.ArgumentParser) -> None:
    """``--name VALUE`` for every parameter of every job type, so each job's parameters read naturally."""
    submit.set_defaults(params={})
    for name in sorted({name for t in catalog.CATALOG.values() for name in t.schema.model_fields} - SUBMIT_OPTIONS):
        submit.add_argument(f"--{name.replace('_', '-')}", action=_ParamAction, dest=name, metavar="VALUE",
                            help=f"the {name} parameter")


class _ParamAction(argparse.Action):
    """Collects ``--name VALUE`` options into ``args.params``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        namespace.params = {**namespace.params, self.dest: values}


def _queue(value: str) -> str:
    if value not in QUEUE_NAMES:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(QUEUE_NAMES)}")
    return value


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m cli", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Callable[..., int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("--json", action="store_true", help="print JSON for scripts")
        sub.set_defaults(handler=handler)
        return sub

    submit = command("submit", cmd_submit, "submit a job (a URL to count words at, or --type with --param)")
    submit.add_argument("values", nargs="*", metavar="VALUE", help="values for the job's parameters, in order")
    submit.add_argument("--type", help=f"job type (default {catalog.default_type().name}); "
                                       f"known: {', '.join(sorted(catalog.CATALOG))}")
    submit.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a job parameter")
    add_param_options(submit)
    submit.add_argument("--priority", type=_queue, default="default", help="high, default or low")
    when = submit.add_mutually_exclusive_group()
    when.add_argument("--delay", type=float, metavar="SECONDS", help="run after this many seconds")
    when.add_argument("--at", help="run at this ISO 8601 time with a zone, e.g. 2030-01-01T09:00:00Z")
    submit.add_argument("--idempotency-key", help="submit at most once per key (24 h)")
    for sub in (submit, command("status", cmd_status, "show a job")):
        sub.add_argument("--wait", action="store_true", help="wait until the job ends, showing its progress")
        sub.add_argument("--timeout", type=float, help="with --wait: give up waiting after this many seconds")
    commands.choices["status"].add_argument("id")
    command("cancel", cmd_cancel, "cancel a waiting job or stop a running one").add_argument("id")
    listing = command("list", cmd_list, "list recent jobs, newest first")
    listing.add_argument("--status", choices=lifecycle.STATUSES)
    listing.add_argument("--type")
    listing.add_argument("--limit", type=int, default=20, choices=range(1, lifecycle.LIST_MAX_LIMIT + 1),
                         metavar="1-100")
    listing.add_argument("--cursor", help="next_cursor from the previous page")
    requeue = command("requeue-failed", cmd_requeue_failed, "requeue failed jobs")
    requeue.add_argument("--queue", type=_queue, action="append", help="only this queue (repeatable)")
    requeue.add_argument("--error-type", help="only jobs that failed with this error type, e.g. FetchTimeout")
    purge = command("purge", cmd_purge, "delete ended jobs older than N days, before their TTL would")
    purge.add_argument("--older-than", type=float, required=True, metavar="DAYS", help="ended at least DAYS ago")
    purge.add_argument("--status", choices=PURGEABLE, action="append", help="only this state (repeatable)")
    purge.add_argument("--queue", type=_queue, action="append", help="only this queue (repeatable)")
    purge.add_argument("--dry-run", action="store_true", help="list what would go, delete nothing")
    command("stats", cmd_stats, "job counts per queue and state, workers, scheduler and clock")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out = Output(args.json)
    try:
        settings = Settings.from_env()
        connection = connect(settings)
        return args.handler(connection, settings, args, out)
    except ConfigError as exc:
        return _fail(out, CliError("configuration_error", str(exc), 2))
    except CliError as exc:
        return _fail(out, exc)
    except RedisError as exc:
        return _fail(out, CliError("redis_unavailable", f"Redis is unavailable ({type(exc).__name__}).", 3))
    except KeyboardInterrupt:
        return 130


def _fail(out: Output, error: CliError) -> int:
    if out.as_json:
        print(json.dumps({"error": {"code": error.code, "message": error.message}}))
    else:
        print(f"error: {error.message}", file=sys.stderr)
    return error.exit_status


def _size(n: float) -> str:
    if n < 1000:
        return f"{n:.0f} B"
    return f"{n / 1000:.1f} kB" if n < 1_000_000 else f"{n / 1_000_000:.1f} MB"


if __name__ == "__main__":
    sys.exit(main())
