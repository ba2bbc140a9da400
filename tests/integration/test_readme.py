"""README.md's shell blocks, run as written (tests/support/docs.py): the `juliarun` command
line against the JuliaRun server, and `make demo` on a machine without the local node's
tools (no containerd, runc, buildah, mmdebstrap on PATH)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from harness import wait_for
from support.docs import REPO, run_block

pytestmark = pytest.mark.integration
VENV_BIN = Path(sys.executable).parent
# What only `make demo-node` needs: hidden from PATH for `make demo`.
NODE_TOOLS = ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "buildah", "mmdebstrap", "crictl")


def user_env(path: str) -> dict[str, str]:
    """A new shell's environment: no JULIARUN_* or KUBECONFIG of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JULIARUN_") and k != "KUBECONFIG"}
    env["PATH"] = path
    return env


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_the_command_line_block_runs_as_written():
    """The block starts the JuliaRun server on 8080 itself, as a user would."""
    assert port_is_free(8080), "README.md's `juliarun` block needs 127.0.0.1:8080 free"
    result = run_block("README.md", "cli", env=user_env(f"{VENV_BIN}:{os.environ['PATH']}"), timeout=300)
    lines = result.stdout.splitlines()
    assert "sim    4         4" in lines  # juliarun scale sim
    assert any(line.startswith("http://127.0.0.1:8080/jrun/") for line in lines)  # juliarun url sim 80
    assert lines[-1] == "deleted JuliaParBatch sim"
    # The server the block left running stops with it (run_block ends the block's session).
    wait_for("the block's JuliaRun server to stop", lambda: port_is_free(8080), 30)


def test_the_local_cluster_block_runs_as_written():
    """`juliarun cluster env` puts kubectl and juliarun on a PATH that has neither."""
    state = Path("/tmp/juliarun-try")  # noqa: S108 (the path the README block names)
    assert not state.exists(), f"{state} exists (a run that did not end?): README's block would refuse it"
    result = run_block("README.md", "local-cluster", env=user_env("/usr/bin:/bin"), timeout=300)
    assert "customresourcedefinition.apiextensions.k8s.io/juliarunjobs.juliarun.dev" in result.stdout
    assert not state.exists()  # down removed the directory up created


def without_node_tools(tmp_path: Path) -> str:
    """A PATH with every command of the machine's PATH but the node's tools."""
    shadow = tmp_path / "bin"
    shadow.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = shadow / entry.name
            if entry.name in NODE_TOOLS or target.exists():
                continue
            if entry.is_file() and os.access(entry.path, os.X_OK):
                target.symlink_to(entry.path)
    return str(shadow)


def test_make_demo_without_the_node_tools(tmp_path):
    path = without_node_tools(tmp_path)
    env = user_env(path)
    for tool in NODE_TOOLS:
        assert not any((Path(d) / tool).exists() for d in path.split(os.pathsep)), tool
    result = run_block("README.md", "demo", env=env, timeout=1200)
    assert "every example JuliaRunJob, applied" in result.stdout
    assert "delete everything" in result.stdout
    # CONTRIBUTING.md's set-up block needs no node tool either.
    run_block("CONTRIBUTING.md", "setup", env=env, timeout=1200)
    assert (REPO / ".venv" / "bin" / "juliarun").exists()
