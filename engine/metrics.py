"""Prometheus metrics computed from Redis on scrape, so any number of web processes report the same numbers.

Gauges (queue depth, registry sizes, workers) are read from RQ's own keys at scrape time. Counters and the
per-job-type histograms cannot be: the registries forget jobs when their TTL ends. So the web process (on
submit) and the worker (when a job starts or ends) add each observation to small Redis hashes, one HINCRBY
per bucket hit; a scrape sums them up. Cardinality is bounded by the catalogue's job types and error classes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from redis import Redis
from redis.client import Pipeline
from rq import Queue, Worker
from rq.registry import (
    BaseRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)

PREFIX = "stack:metrics"
SUBMITTED = f"{PREFIX}:submitted"  # hash: job type → count
FAILED = f"{PREFIX}:failed"  # hash: "type|error class" → count of jobs that failed for good
RETRIED = f"{PREFIX}:retried"  # hash: "type|error class" → count of failed attempts that were retried
HISTOGRAM_TYPES = f"{PREFIX}:types"  # set: job types with histogram data
DURATION = "duration"
QUEUE_WAIT = "queue_wait"
BUCKETS = {
    DURATION: (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, math.inf),
    QUEUE_WAIT: (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, math.inf),
}
REGISTRIES: dict[str, type[BaseRegistry]] = {
    "started": StartedJobRegistry,
    "failed": FailedJobRegistry,
    "scheduled": ScheduledJobRegistry,
    "deferred": DeferredJobRegistry,
    "finished": FinishedJobRegistry,
}
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def histogram_key(kind: str, job_type: str) -> str:
    return f"{PREFIX}:{kind}:{job_type}"


def observe(target: Redis | Pipeline, kind: str, job_type: str, seconds: float) -> None:
    """Add one observation: its bucket (not cumulative; a scrape adds them up), the count and the sum.

    Given a pipeline the writes join it (the caller's transaction); given a client they go in one round trip.
    """
    seconds = max(0.0, seconds)
    bound = next(b for b in BUCKETS[kind] if seconds <= b)
    key = histogram_key(kind, job_type)
    pipe = target if isinstance(target, Pipeline) else target.pipeline(transaction=False)
    pipe.sadd(HISTOGRAM_TYPES, job_type)
    pipe.hincrby(key, _le(bound), 1)
    pipe.hincrby(key, "count", 1)
    pipe.hincrbyfloat(key, "sum", seconds)
    if pipe is not target:
        pipe.execute()


def count(connection: Redis | Pipeline, counter: str, *labels: str) -> None:
    """Add one to a labelled counter (SUBMITTED, FAILED or RETRIED)."""
    connection.execute_command(*counting(counter, *labels))


def counting(counter: str, *labels: str) -> tuple[str, str, str, int]:
    """The command that adds one to a labelled counter, for a batch of writes sent as one."""
    return ("HINCRBY", counter, "|".join(labels), 1)


class RedisCollector:
    """A prometheus-client collector that reads everything from Redis when scraped."""

    def __init__(self, connection: Redis, queues: Iterable[Queue]):
        self.connection = connection
        self.queues = list(queues)

    def collect(self) -> Iterator[Metric]:
        yield from self._queues()
        yield from self._workers()
        yield from self._counters()
        yield from self._histograms()

    def _queues(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("rq_queue_depth", "Jobs waiting in the queue.", labels=["queue"])
        sizes = GaugeMetricFamily(
            "rq_registry_jobs", "Jobs in each RQ registry, per queue.", labels=["queue", "registry"]
        )
        for queue in self.queues:
            depth.add_metric([queue.name], queue.count)
            for name, registry_class in REGISTRIES.items():
                registry = registry_class(queue.name, connection=self.connection, serializer=queue.serializer)
                sizes.add_metric([queue.name, name], registry.get_job_count(cleanup=False))
        yield depth
        yield sizes

    def _workers(self) -> Iterator[Metric]:
        workers = Worker.all(connection=self.connection)
        live = GaugeMetricFamily("rq_workers_live", "Workers with a live RQ heartbeat (their key has not expired).")
        live.add_metric([], len(workers))
        by_state = GaugeMetricFamily("rq_workers", "Live workers by state: busy runs a job, idle waits for one.",
                                     labels=["state"])
        states = {"busy": 0, "idle": 0}
        for worker in workers:
            state = worker.get_state()
            states[state] = states.get(state, 0) + 1
        for state, number in sorted(states.items()):
            by_state.add_metric([state], number)
        yield live
        yield by_state

    def _counters(self) -> Iterator[Metric]:
        specs = (
            (SUBMITTED, "rq_jobs_submitted", "Jobs accepted and enqueued, by job type.", ["type"]),
            (FAILED, "rq_jobs_failed", "Jobs that failed for good, by job type and error class.", ["type", "error"]),
            (RETRIED, "rq_job_retries", "Failed attempts that were retried, by job type and error class.",
             ["type", "error"]),
        )
        for key, name, documentation, labels in specs:
            family = CounterMetricFamily(name, documentation, labels=labels)
            for field, value in sorted(self.connection.hgetall(key).items()):
                parts = field.decode().split("|")
                if len(parts) == len(labels):
                    family.add_metric(parts, int(value))
            yield family

    def _histograms(self) -> Iterator[Metric]:
        types = sorted(t.decode() for t in self.connection.smembers(HISTOGRAM_TYPES))
        specs = (
            (DURATION, "rq_job_duration_seconds", "Time a job's function ran, per attempt, by job type."),
            (QUEUE_WAIT, "rq_job_queue_wait_seconds", "Time from enqueue to start, per attempt, by job type."),
        )
        for kind, name, documentation in specs:
            family = HistogramMetricFamily(name, documentation, labels=["type"])
            for job_type in types:
                data = {k.decode(): v for k, v in self.connection.hgetall(histogram_key(kind, job_type)).items()}
                running, buckets = 0, []
                for bound in BUCKETS[kind]:
                    running += int(data.get(_le(bound), 0))
                    buckets.append((_le(bound), running))
                family.add_metric([job_type], buckets, float(data.get("sum", 0.0)))
            yield family


def render(connection: Redis, queues: Iterable[Queue]) -> bytes:
    """The Prometheus text exposition of every series, read from Redis now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(connection, queues))
    return generate_latest(registry)
