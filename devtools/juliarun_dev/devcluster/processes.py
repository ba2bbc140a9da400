"""The cluster's processes: started detached with their log in a file, polled until ready,
recognised by pid and executable, and stopped (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import requests

from .state import DevClusterError

READY_TIMEOUT = 60.0
STOP_GRACE = 10.0


def free_port() -> int:
    # The port is released before the server binds it; a collision in that
    # window only makes `up` fail, it cannot reach anyone else's server.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def alive(pid: int, exe: Path) -> bool:
    """True if pid is still our process running exe (not a zombie, not a reused pid)."""
    try:
        # Reaps the process when we are its parent (tests call up and down in
        # one process); otherwise the zombie would look alive.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        if Path(f"/proc/{pid}/exe").resolve() != exe.resolve():
            return False
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return state != "Z"


def stop(pid: int, exe: Path) -> None:
    """SIGTERM, then SIGKILL after STOP_GRACE seconds; returns once the process is gone."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, 5.0)):
        if not alive(pid, exe):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid, exe):
                return
            time.sleep(0.05)
    raise DevClusterError(f"process {pid} ({exe.name}) survived SIGKILL")


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    # A new session: the server outlives the CLI and ignores its Ctrl-C.
    with open(log, "ab") as out:
        return subprocess.Popen(  # noqa: S603 (the built control-plane binaries, by path)
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def log_tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def wait_until(check: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    """Poll check() until true; fail early if proc died."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DevClusterError(
                f"{what} exited with code {proc.returncode}; last log lines:\n{log_tail(log)}"
            )
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise DevClusterError(f"{what} not ready after {READY_TIMEOUT:.0f}s; last log lines:\n{log_tail(log)}")
