"""An emulated job's record (what the state file keeps), its timing knobs, and Refused,
the error an API call answers with. The constants of the job variables that steer a job
(JULIARUN_EMULATOR_FAIL, JULIARUN_EMULATOR_RUN_TIME) and of its log streams live here too."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from ..juliarun import jobtypes as jt

STDOUT, STDERR = "stdout", "stderr"
STREAMS = (STDOUT, STDERR)
# Lines fixed in a job's history (API actions, finished scale approaches) are capped like a
# rotated log, so a job scaled up and down forever does not grow without bound.
MAX_HISTORY = 1000
MAX_TAIL = 10_000  # lines one tailJob returns at most, however long the job has run
BATCH_PROGRESS_STEPS = 5  # a batch job logs progress at each fifth of its run time
STATE_FORMAT = 1
FAIL_ENV = "JULIARUN_EMULATOR_FAIL"  # a job variable that makes the emulated job fail
RUN_TIME_ENV = "JULIARUN_EMULATOR_RUN_TIME"  # a job variable: this job's run time, in seconds
FAIL_MODES = ("all", "some", "crash")
# Looked up for every job, so taken out of the table once.
_DEFAULT_PORTS = {name: t.defaults().get("ports") or {} for name, t in jt.JOB_TYPES.items()}


class Refused(Exception):
    """An API call the cluster refuses: `code` and `reason` go into the response envelope."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Timing:
    create_delay: float = 1.0
    worker_delay: float = 0.5
    run_time: float = 10.0
    log_interval: float = 5.0  # heartbeat lines of jobs without a run time


@dataclass
class Job:
    namespace: str
    name: str
    type: str
    params: dict[str, Any]
    submitted_at: float
    created_at: float
    completes_at: float | None
    requested: int  # workers wanted (1 for non-scalable types)
    base: int  # running workers when the current approach began
    approach_from: float  # when the current approach began
    started_before: int  # workers started before the current approach
    history: list[list[Any]] = field(default_factory=list)  # [time, stream, text], by time
    fail: str = ""  # one of FAIL_MODES, or "" for a job that succeeds
    address: str = ""  # where the job was moved to (/_emulator/move); "" at its own fake pod IP
    ip: str = field(init=False)
    endpoints: list[str] = field(init=False)  # while running; derived, not saved

    def __post_init__(self) -> None:
        self.move(self.address)

    def move(self, address: str) -> None:
        """The job runs at `address` from now on ("": its own fake pod IP), as when JuliaRun
        reschedules a job's pod."""
        self.address = address
        self.ip = address or fake_pod_ip(self.namespace, self.name)
        self.refresh_endpoints()

    def ports(self) -> dict[str, Any]:
        ports = self.params.get("ports")
        return _DEFAULT_PORTS[self.type] if ports is None else ports

    def refresh_endpoints(self) -> None:
        self.endpoints = [f"{self.ip}:{pair[1]}" for pair in self.ports().values()]

    def to_dict(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in (
                "namespace",
                "name",
                "type",
                "params",
                "submitted_at",
                "created_at",
                "completes_at",
                "requested",
                "base",
                "approach_from",
                "started_before",
                "history",
                "fail",
                "address",
            )
        }


def fake_pod_ip(namespace: str, name: str) -> str:
    """A stable 10.x.y.z address for a job: a string to report, never connected to."""
    a, b, c = hashlib.sha1(f"{namespace}/{name}".encode(), usedforsecurity=False).digest()[:3]
    return f"10.{a}.{b}.{max(c, 1)}"
