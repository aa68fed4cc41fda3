"""Pins every RQ method StackWorker overrides and every RQ private it touches, so an RQ upgrade that moves one
fails here, loudly, instead of silently bypassing a guarantee (claims, grace, recovery, one event path)."""

from __future__ import annotations

import inspect

import pytest
from rq.job import Job
from rq.queue import Queue
from rq.timeouts import BaseDeathPenalty
from rq.worker import SimpleWorker
from rq.worker.base import BaseWorker

from engine.handoff import SafeQueue
from engine.worker import StackWorker

# RQ method → the parameters (after self) it must still take for our override to be called the same way.
OVERRIDDEN = {
    "bootstrap": ["logging_level", "date_format", "log_format"],
    "request_stop": ["signum", "frame"],
    "teardown": [],
    "execute_job": ["job", "queue"],
    "prepare_execution": ["job"],
    "prepare_job_execution": ["job", "remove_from_intermediate_queue"],
    "handle_execution_ended": ["job", "queue", "heartbeat_ttl"],
    "handle_job_success": ["job", "queue", "started_job_registry", "execution"],
    "handle_job_failure": ["job", "queue", "started_job_registry", "exc_string", "execution"],
    "increment_successful_job_count": ["pipeline"],
    "increment_failed_job_count": ["pipeline"],
    "handle_exception": ["job", "exc_info"],
    "handle_payload": ["message"],
    "request_stop_execution": ["execution_id"],
    "heartbeat": ["timeout", "pipeline"],
    "set_state": ["state", "pipeline"],
    "clean_registries": [],
    "check_for_suspension": ["burst"],
}


@pytest.mark.parametrize(("name", "params"), sorted(OVERRIDDEN.items()))
def test_overridden_methods_still_exist_in_rq_with_the_same_parameters(name, params):
    rq_method = getattr(SimpleWorker, name)
    assert list(inspect.signature(rq_method).parameters)[1:] == params, f"RQ changed {name}"
    assert name in vars(StackWorker), f"{name} is listed here but no longer overridden: drop it from the list"


def test_no_other_rq_method_is_overridden():
    ours = {name for name, value in vars(StackWorker).items()
            if inspect.isfunction(value) or isinstance(value, property)}
    rq_names = {name for klass in SimpleWorker.__mro__ for name in vars(klass)}
    touched = (ours & rq_names) - {"__init__", "dequeue_timeout", "_stopped_job_id"}
    assert touched == set(OVERRIDDEN), touched ^ set(OVERRIDDEN)


def test_init_still_takes_what_we_and_rqs_cli_pass():
    params = inspect.signature(BaseWorker.__init__).parameters
    for name in ("queues", "name", "connection", "exception_handlers", "job_monitoring_interval", "serializer",
                 "job_class", "queue_class", "worker_ttl", "default_result_ttl", "maintenance_interval"):
        assert name in params, name


def test_rq_calls_the_hooks_we_rely_on_from_inside_its_transactions():
    success = inspect.getsource(BaseWorker.handle_job_success)
    assert "self.increment_successful_job_count(pipeline=pipeline)" in success
    assert success.index("increment_successful_job_count") < success.index("pipeline.execute()")
    failure = inspect.getsource(BaseWorker.handle_job_failure)
    assert "self.increment_failed_job_count(pipeline)" in failure
    assert failure.index("increment_failed_job_count") < failure.index("pipeline.execute()")
    perform = inspect.getsource(BaseWorker.perform_job)
    assert "self.prepare_job_execution(" in perform and "self._finalize_failure(" in perform
    finalize = inspect.getsource(BaseWorker._finalize_failure)
    assert finalize.index("self.handle_exception(") < finalize.index("self.handle_job_failure(")
    dequeue = inspect.getsource(BaseWorker.dequeue_job_and_maintain_ttl)
    assert "self.queue_class.dequeue_any(" in dequeue and "self.heartbeat()" in dequeue
    assert "self.execute_job(job, queue)" in inspect.getsource(BaseWorker.work)


def test_rq_privates_we_touch_still_exist():
    worker_init = inspect.getsource(BaseWorker.__init__)
    for private in ("self._stopped_job_id", "self._exc_handlers", "self._shutdown_requested_date",
                    "self._stop_requested", "self.last_cleaned_at", "self.executions"):
        assert private in worker_init, private
    assert "self._stopped_job_id == job.id" in inspect.getsource(BaseWorker.handle_job_failure)
    assert "call_exception_handlers(self._exc_handlers" in inspect.getsource(BaseWorker.handle_exception)
    assert "self._shutdown_requested_date = now()" in inspect.getsource(BaseWorker.request_stop)
    # Our clean_registries is RQ's minus the intermediate-list sweep: RQ's must still do exactly these steps.
    cleaning = inspect.getsource(BaseWorker.clean_registries)
    for step in ("acquire_maintenance_lock()", "clean_registries(queue, self._exc_handlers)",
                 "clean_worker_registry(queue)", "intermediate_queue.cleanup(self, queue)",
                 "release_maintenance_lock()", "self.last_cleaned_at = now()"):
        assert step in cleaning, step


def test_queue_and_timeout_apis_we_build_on():
    assert list(inspect.signature(Queue.dequeue_any).parameters) == list(
        inspect.signature(SafeQueue.dequeue_any).parameters)
    # SafeQueue builds the job from the hash its claim script read, as Job.fetch does after its HGETALL.
    assert "self.restore(data)" in inspect.getsource(Job.refresh)
    assert list(inspect.signature(Job.__init__).parameters)[:4] == ["self", "id", "connection", "serializer"]
    assert Job.redis_job_namespace_prefix == "rq:job:"
    assert list(inspect.signature(Queue.from_queue_key).parameters)[:2] == ["queue_key", "connection"]
    assert list(inspect.signature(Queue._enqueue_job).parameters)[:3] == ["self", "job", "pipeline"]
    assert "at_front" in inspect.signature(Queue._enqueue_job).parameters  # recovery.requeue_now
    penalty = inspect.getsource(BaseDeathPenalty.__init__)
    assert "self._timeout" in penalty and "self._exception" in penalty
    assert {"setup_death_penalty", "cancel_death_penalty"} <= set(vars(BaseDeathPenalty))


def test_the_per_job_lines_we_quieten_are_still_rqs():
    from engine.worker import RQ_PER_JOB_LINES

    source = "".join(inspect.getsource(f) for f in (BaseWorker.dequeue_job_and_maintain_ttl,
                                                    BaseWorker._finalize_success, BaseWorker.handle_job_success))
    for template in RQ_PER_JOB_LINES:
        assert f"'{template}'" in source, template
    assert "self.log = logger" in inspect.getsource(BaseWorker.__init__)
