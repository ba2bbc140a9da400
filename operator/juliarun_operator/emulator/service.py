"""The emulated JuliaRun service: the cluster plus what the server adds around it: its
configuration, token checks, fault dice, call counters and the state file."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..juliarun.errors import CODE_UNAUTHORIZED
from . import faults as fl
from .jobs import Refused, Timing
from .state import Cluster

SAVE_DELAY = 0.5  # seconds a state-file write waits so a burst of changes is written once


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    auth: dict[str, list[str]] | None = None  # namespace -> accepted tokens; None: any token
    create_delay: float = 1.0
    worker_delay: float = 0.5
    run_time: float = 10.0
    state_file: str | None = None
    seed: int | None = None
    faults: dict[str, Any] = field(default_factory=dict)
    log_interval: float = 5.0  # heartbeat log lines of jobs that run until deleted
    code_offset: int = 0  # added to every error code: clients must not depend on our codes
    listen: tuple[str, ...] = ()  # addresses jobs take and listen on while they run (listeners.py)


class Emulator:
    """The cluster plus what the server adds around it: auth, faults, counters, the file."""

    def __init__(self, config: EmulatorConfig, clock: Callable[[], float] | None = None):
        self.config = config
        timing = Timing(config.create_delay, config.worker_delay, config.run_time, config.log_interval)
        self.cluster = Cluster(timing, clock) if clock else Cluster(timing)
        self.cluster.pool = list(config.listen)
        self.faults = fl.Faults(config.faults, config.seed)
        self.auth = (
            {ns: [t.encode() for t in tokens] for ns, tokens in config.auth.items()}
            if config.auth is not None
            else None
        )
        self.operations: dict[str, int] = {}
        self.job_calls: dict[str, dict[str, dict[str, int]]] = {}
        self.first_calls: dict[str, dict[str, dict[str, float]]] = {}
        self.stopping = asyncio.Event()
        self._saved_version = 0
        self._save_timer: asyncio.TimerHandle | None = None
        if config.state_file and os.path.exists(config.state_file):
            try:
                with open(config.state_file, encoding="utf-8") as f:
                    self.cluster.load_dict(json.load(f))
            except ValueError as exc:
                raise ValueError(f"state file {config.state_file}: {exc}") from None
            self._saved_version = self.cluster.version

    # --- counters -------------------------------------------------------------------

    def count(self, operation: str, namespace: str, name: str | None) -> None:
        self.operations[operation] = self.operations.get(operation, 0) + 1
        if name is not None:
            per_job = self.job_calls.setdefault(namespace, {}).setdefault(name, {})
            per_job[operation] = per_job.get(operation, 0) + 1
            # When a call first came (wall time, as it was read): latencies without a proxy.
            first = self.first_calls.setdefault(namespace, {}).setdefault(name, {})
            first.setdefault(operation, time.time())

    def counters(self) -> dict[str, Any]:
        return {"operations": self.operations, "jobs": self.job_calls, "first_call": self.first_calls}

    def reset_counters(self) -> None:
        self.operations, self.job_calls, self.first_calls = {}, {}, {}

    # --- auth -----------------------------------------------------------------------

    def check_token(self, namespace: str, encoded: str | None) -> None:
        if not encoded:
            raise Refused(CODE_UNAUTHORIZED, "missing token (jruntok)")
        try:
            token = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise Refused(CODE_UNAUTHORIZED, "token (jruntok) is not base64") from None
        if not token:
            raise Refused(CODE_UNAUTHORIZED, "empty token (jruntok)")
        if self.auth is None:
            return
        # Compare against every accepted token so timing says nothing about which matched.
        matched = False
        for accepted in self.auth.get(namespace, ()):
            matched |= hmac.compare_digest(token, accepted)
        if not matched:
            raise Refused(CODE_UNAUTHORIZED, f"token not accepted for namespace {namespace!r}")

    # --- the state file -------------------------------------------------------------

    def changed(self) -> None:
        if self.config.state_file and self._save_timer is None:
            self._save_timer = asyncio.get_running_loop().call_later(SAVE_DELAY, self.save)

    def save(self) -> None:
        self._save_timer = None
        version = self.cluster.version
        if not self.config.state_file or version == self._saved_version:
            return
        path = os.path.abspath(self.config.state_file)
        # Write a sibling temporary file and rename it over: a crash leaves old or new, whole.
        fd, tmp = tempfile.mkstemp(prefix=".emulator-state-", dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.cluster.to_dict(), f, separators=(",", ":"))
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        self._saved_version = version

    def close(self) -> None:
        if self._save_timer is not None:
            self._save_timer.cancel()
        self.save()


EMULATOR = web.AppKey("emulator", Emulator)
