"""Cancel a waiting job or stop a running one, releasing whatever waits on it."""

from __future__ import annotations

from redis import Redis
from rq import Queue
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation
from rq.job import Job

from engine.queues import SERIALIZER, CatalogJob
from engine.status import job_status


class NotCancelable(Exception):
    """The job already reached a terminal state."""


def cancel_job(connection: Redis, job: Job) -> str:
    """Cancel a waiting job or stop a running one; returns the status it moves to."""
    status = job_status(job)
    if status in ("queued", "scheduled", "deferred"):
        detach_dependents(connection, job)
        job.cancel(enqueue_dependents=True)
        return "canceled"
    if status == "started":
        try:
            send_stop_job_command(connection, job.id, serializer=SERIALIZER)
        except InvalidJobOperation:  # it finished between our read and the command
            status = job_status(CatalogJob.fetch(job.id, connection=connection, serializer=SERIALIZER))
        else:
            detach_dependents(connection, job)
            queue = Queue(job.origin, connection=connection, serializer=SERIALIZER, job_class=CatalogJob)
            queue.enqueue_ready_jobs_by_queue(queue.move_dependents_to_ready(job, exclude_job_id=job.id))
            return "stopped"
    raise NotCancelable(f"The job is already {status}; only waiting or running jobs can be canceled.")


def detach_dependents(connection: Redis, job: Job) -> None:
    """Stop jobs that wait on ``job`` (a batch's aggregate) from waiting for it: it will never finish.

    RQ releases dependents only when a parent finishes or fails; a canceled or stopped parent would hold them
    deferred until their TTL. The dependents read the parent's final state themselves when they run.
    """
    dependent_ids = [i.decode() for i in connection.smembers(job.dependents_key)]
    if dependent_ids:
        with connection.pipeline(transaction=False) as pipe:
            for dependent_id in dependent_ids:
                pipe.srem(Job(dependent_id, connection=connection).dependencies_key, job.id)
            pipe.execute()
