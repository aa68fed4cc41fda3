"""RQ's records of ended jobs, written for a whole batch of jobs in one script call (group commit).

RQ's own writers build the records (``Job.save``, ``Result.create``, the registries' ``add``, ``Job.retry``,
``Worker.cleanup_execution`` …) into a pipeline that is never executed itself: its commands are compacted
(increments of the same counter summed, successive HSETs of one hash merged) and replayed by one Lua script.
So the records are exactly RQ's, whatever RQ version writes them, and a batch costs one round trip.

The same call frees the client slots (engine.fairness) of the jobs that ended, finished, failed, stopped or retried
alike, so a slot is never held by a job RQ's records show ended, nor freed before its end is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from redis import Redis
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.results import Result
from rq.utils import now
from rq.worker import BaseWorker

from engine import fairness
from engine.handoff import run_script

# ARGV: how many jobs ended, their ids; then per command its word count, whether its reply is wanted (1/0), then
# its words. Each command runs whatever the others do (as in MULTI/EXEC); the wanted replies come back in order. The
# slots are freed first, while the job hashes still say whose they are (a job kept for 0 s is deleted by its records).
REPLAY_SCRIPT = fairness.LUA + """
local ended = tonumber(ARGV[1])
for k = 2, ended + 1 do fair_release(ARGV[k]) end
local replies, i = {}, ended + 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local reply = redis.pcall(unpack(ARGV, i + 2, i + 1 + n))
  if ARGV[i + 1] == '1' then replies[#replies + 1] = reply end
  i = i + 2 + n
end
return replies
"""

_SUMMED = {"HINCRBY": int, "HINCRBYFLOAT": float}


def compact(commands: Sequence[Sequence[Any]], wanted: set[int], absent: frozenset[Any] = frozenset()
            ) -> tuple[list[list[Any]], list[int]]:
    """The same writes in fewer commands; returns them and the new positions of the ``wanted`` ones.

    Increments of one hash field are summed, repeated SADDs of one member dropped and successive HSETs of one hash
    merged, as long as no other command on that key comes between (then the order is kept as it was). An EXPIRE of
    a key known ``absent`` changes nothing, so it is dropped.
    """
    out: list[list[Any]] = []
    open_: dict[Any, dict[Any, int]] = {}  # key → what later commands on it may join: (name, field) → position
    positions = []
    for index, command in enumerate(commands):
        name, key = str(command[0]).upper(), command[1] if len(command) > 1 else None
        if name == "EXPIRE" and key in absent and index not in wanted:
            continue
        joinable = open_.setdefault(key, {})
        if index in wanted:
            open_.pop(key)
            positions.append(len(out))
        elif name in _SUMMED and len(command) == 4:
            joinable.pop("HSET", None)
            slot = joinable.get((name, command[2]))
            if slot is not None:
                out[slot][3] = _SUMMED[name](out[slot][3]) + _SUMMED[name](command[3])
                continue
            joinable[(name, command[2])] = len(out)
        elif name == "SADD" and len(command) == 3:
            joinable.pop("HSET", None)
            if (name, command[2]) in joinable:
                continue
            joinable[(name, command[2])] = len(out)
        elif name == "HSET":
            slot = joinable.get(name)
            if slot is not None:
                out[slot].extend(command[2:])  # later fields win, as when sent one after the other
                continue
            open_[key] = {name: len(out)}
        else:
            open_.pop(key)
        out.append(list(command))
    return out, positions


class Batch:
    """Writes collected from RQ's writers for several jobs, sent in one script call."""

    def __init__(self, connection: Redis):
        self.connection = connection
        self.pipe = connection.pipeline(transaction=False)
        self._wanted: list[int] = []  # positions in the pipeline whose replies the caller asked for
        self.absent: set[str] = set()  # keys known not to exist (RQ's cleanup EXPIREs them all the same)
        self.ended: list[str] = []  # the jobs whose client slots this call frees

    def want(self, command: str, key: str, since: int = 0) -> int:
        """Ask for the reply of the last ``command`` on ``key`` written since position ``since`` (without one, of
        a new EXISTS of the key); returns a ticket for ``send``'s answer."""
        stack = self.pipe.command_stack
        for position in range(len(stack) - 1, since - 1, -1):
            args = stack[position][0]
            if str(args[0]).upper() == command and args[1] == key:
                break
        else:
            position = len(stack)
            self.pipe.execute_command("EXISTS", key)
        self._wanted.append(position)
        return len(self._wanted) - 1

    def __len__(self) -> int:
        return len(self.pipe.command_stack)

    def send(self) -> list[Any]:
        """Run every write in one script call; the wanted replies, by ticket."""
        if not self.pipe.command_stack and not self.ended:
            return []
        commands, positions = compact([args for args, _options in self.pipe.command_stack], set(self._wanted),
                                      frozenset(self.absent))
        argv: list[Any] = [len(self.ended), *self.ended]
        wanted = set(positions)
        for position, command in enumerate(commands):
            argv += [len(command), 1 if position in wanted else 0, *command]
        return list(run_script(self.connection, REPLAY_SCRIPT, [], argv) or [])


def finished(batch: Batch, worker: BaseWorker, job: Job, execution: Execution, value: Any) -> None:
    """What RQ's ``handle_job_success`` writes, its watched dependents aside (see ``release_dependents``)."""
    result_ttl = job.get_result_ttl(worker.default_result_ttl)
    pipe = batch.pipe
    batch.ended.append(job.id)
    if result_ttl != 0:
        job.set_status(JobStatus.FINISHED, pipeline=pipe)
        job.save(pipeline=pipe, include_meta=False, include_result=False)
        Result.create(job, Result.Type.SUCCESSFUL, return_value=value, ttl=result_ttl, worker_name=worker.name,
                      pipeline=pipe, execution_id=execution.id, execution_started_at=execution.created_at,
                      execution_ended_at=job.ended_at)
        job.finished_job_registry.add(job, result_ttl, pipe)
    job.cleanup(result_ttl, pipeline=pipe, remove_from_queue=False)
    worker.cleanup_execution(job, pipeline=pipe, execution=execution)
    worker.increment_successful_job_count(pipeline=pipe)
    _working_time(worker, job, batch)


def failed(batch: Batch, worker: BaseWorker, job: Job, queue: Queue, execution: Execution, exc_string: str,
           stopped: bool) -> bool:
    """What RQ's ``handle_job_failure`` writes (retried, stopped or failed), plus the job's meta (its readable
    error); returns whether the job was retried."""
    pipe = batch.pipe
    batch.ended.append(job.id)
    retry = job.should_retry and not stopped
    pipe.hset(job.key, "meta", job.serializer.dumps(job.meta))
    if stopped:
        job.set_status(JobStatus.STOPPED, pipeline=pipe)
    elif not retry:
        job.set_status(JobStatus.FAILED, pipeline=pipe)
    worker.cleanup_execution(job, pipeline=pipe, execution=execution)
    if not worker.disable_default_exception_handler and not retry:
        job.failed_job_registry.add(job, ttl=job.failure_ttl, exc_string=exc_string, pipeline=pipe)
        Result.create_failure(job, job.failure_ttl, exc_string=exc_string, worker_name=worker.name, pipeline=pipe,
                              execution_id=execution.id, execution_started_at=execution.created_at,
                              execution_ended_at=job.ended_at)
    worker.increment_failed_job_count(pipeline=pipe)
    _working_time(worker, job, batch)
    if retry:
        interval = job.get_retry_interval()
        if interval:  # what Job.retry does, but its status write too rides in the batch instead of going first
            job.retries_left = (job.retries_left or 1) - 1
            queue.schedule_job(job, now() + timedelta(seconds=interval), pipeline=pipe)
        else:
            job.retry(queue, pipe)
    return retry


def _working_time(worker: BaseWorker, job: Job, batch: Batch) -> None:
    if job.started_at and job.ended_at:
        worker.increment_total_working_time(job.ended_at - job.started_at, batch.pipe)
