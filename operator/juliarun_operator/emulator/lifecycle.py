"""What an emulated job reports at a given moment, computed from its few timestamps: its
status, scale and endpoints, and the log lines of its lifecycle, workers and progress.

Lifecycle, per job:
- scheduled at submit; created `create_delay` seconds later;
- workers (scalable types) approach the requested scale one step per `worker_delay`,
  starting at creation; a scale change restarts the approach from the running count;
- batch types (`completes`) finish `run_time` seconds after creation (never if 0);
  services run until deleted.

Failures, per job (`fail`, from the job's `JULIARUN_EMULATOR_FAIL` variable or a fault rule):
- "all": the job ends at its run time with no worker succeeded;
- "some": it ends at its run time with half its workers (rounded down) succeeded;
- "crash": the job dies while running, at half its run time (a service too), none succeeded.
A failed job counts at least one worker started, so that the status tuple says it failed
(`workersSucceeded < workersStarted`) even with no workers requested.

Scale as reported by getJobScale, `[running, requested]`:
- scalable types: requested is `nworkers` (0 when not given), running the workers so far;
- other types are one unit: `[0, 1]` before creation, `[1, 1]` while running;
- a finished job reports `[0, 0]`: nothing runs and nothing more is wanted.
For the status tuple, a non-scalable job counts its one container as its worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..juliarun import jobtypes as jt
from .jobs import BATCH_PROGRESS_STEPS, STDERR, STDOUT, Job, Timing

# Looked up for every job on every getAllJobInfo, so taken out of the table once.
_SCALABLE = {name: t.scalable for name, t in jt.JOB_TYPES.items()}


def is_completed(job: Job, now: float) -> bool:
    return job.completes_at is not None and now >= job.completes_at


def steps_done(job: Job, t: float, timing: Timing) -> int:
    """Worker steps of the current approach done by time `t`."""
    start = max(job.approach_from, job.created_at)
    if t < start:
        return 0
    distance = abs(job.requested - job.base)
    if timing.worker_delay <= 0:
        return distance
    return min(distance, int((t - start) / timing.worker_delay))


def workers_at(job: Job, t: float, timing: Timing) -> tuple[int, int]:
    """(running, started so far) of a scalable job at `t`, ignoring completion."""
    steps = steps_done(job, t, timing)
    if job.requested >= job.base:
        return job.base + steps, job.started_before + steps
    return job.base - steps, job.started_before


def view(job: Job, now: float, timing: Timing) -> tuple[list[int], list[int], list[str]]:
    """(status, scale, endpoints) of `job` at `now`, as the API reports them."""
    created = now >= job.created_at
    completed = is_completed(job, now)
    notebook = job.type == "Notebook"
    failed = completed and bool(job.fail)
    if _SCALABLE[job.type]:
        running, started = workers_at(job, min(now, job.completes_at or now), timing)
        if failed:
            started = max(started, 1)
        succeeded = (started // 2 if job.fail == "some" else 0) if failed else started
        status = [completed, succeeded if completed else 0, started, created, notebook]
        scale = [0, 0] if completed else [running if created else 0, job.requested]
    else:
        status = [completed, 1 if completed and not failed else 0, 1 if created else 0, created, notebook]
        scale = [0, 0] if completed else [1 if created else 0, 1]
    endpoints = list(job.endpoints) if created and not completed else []
    return status, scale, endpoints


def lifecycle_lines(job: Job, now: float, timing: Timing) -> list[list[Any]]:
    lines = []
    if now >= job.created_at:
        lines.append([job.created_at, STDERR, f"[ Info: job created: pod {job.ip}"])
    if is_completed(job, now):
        status = view(job, now, timing)[0]
        if job.fail == "crash":
            lines.append([job.completes_at, STDERR, "ERROR: the job died while running"])
        elif job.fail:
            lines.append(
                [job.completes_at, STDERR, f"ERROR: job failed: {status[1]} of {status[2]} succeeded"]
            )
        else:
            lines.append([job.completes_at, STDOUT, f"job finished: {status[1]} succeeded"])
    return lines


def worker_lines(job: Job, until: float, count: int, timing: Timing) -> list[list[Any]]:
    """The last `count` worker start/stop lines of the current approach, up to `until`."""
    if not _SCALABLE[job.type]:
        return []
    steps = steps_done(job, until, timing)
    start = max(job.approach_from, job.created_at)
    delay = max(timing.worker_delay, 0.0)
    up = job.requested >= job.base
    lines = []
    for i in range(max(1, steps - count + 1), steps + 1):
        text = f"worker {job.base + i} started" if up else f"worker {job.base - i + 1} stopped"
        lines.append([start + i * delay, STDERR, f"[ Info: {text}"])
    return lines


def progress_lines(job: Job, now: float, count: int, timing: Timing) -> Iterable[list[Any]]:
    """Periodic lines: a batch job's progress in fifths, otherwise a heartbeat."""
    if job.completes_at is not None:
        interval = (job.completes_at - job.created_at) / BATCH_PROGRESS_STEPS
        last_k = BATCH_PROGRESS_STEPS - 1  # the last fifth is the completion line
    else:
        interval = timing.log_interval
        last_k = None
    if interval <= 0 or now < job.created_at:
        return []
    k_now = int((now - job.created_at) / interval)
    if last_k is not None:
        k_now = min(k_now, last_k)
    lines = []
    for k in range(max(1, k_now - count + 1), k_now + 1):
        t = job.created_at + k * interval
        if job.completes_at is not None:
            text = f"progress: {100 * k // BATCH_PROGRESS_STEPS}%"
        else:
            text = "running for " + f"{k * interval:.3f}".rstrip("0").rstrip(".") + " s"
        lines.append([t, STDOUT, text])
    return lines
