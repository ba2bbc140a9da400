"""A state directory is never a weapon: `juliarun cluster up` and `down` with an empty, a
foreign and a real state dir delete nothing of the user's (issue 20: `--state-dir "$STATE"`
with STATE unset once deleted the current directory). And `juliarun cluster env`, which puts
the tools on PATH and points KUBECONFIG at the cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.docs import SETS_BY_COMMAND

pytestmark = pytest.mark.integration
JULIARUN = str(Path(sys.executable).parent / "juliarun")


def user_files(root: Path) -> dict[str, str]:
    """Every file under root (relative path -> content)."""
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def home(tmp_path) -> Path:
    """A directory of the user's, like a checkout: files and a subdirectory."""
    home = tmp_path / "work"
    (home / "src").mkdir(parents=True)
    (home / "notes.txt").write_text("mine\n")
    (home / "src" / "main.py").write_text("print('mine')\n")
    return home


def sh(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """As a user types it, with STATE unset."""
    env = {k: v for k, v in os.environ.items() if k != "STATE"}
    env["PATH"] = f"{Path(JULIARUN).parent}:{env['PATH']}"
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", ["up", "down", "status", "load x.tar", "env"])
def test_an_empty_state_dir_is_refused_and_touches_nothing(home, command):
    before = user_files(home)
    result = sh(f'juliarun cluster {command} --state-dir "$STATE"', cwd=home)
    assert result.returncode == 2, result
    assert "--state-dir: empty (an unset variable?)" in result.stderr
    assert user_files(home) == before


def test_a_foreign_directory_is_refused_by_up_and_down(home):
    before = user_files(home)
    for command in ("up", "down", "up --node"):
        result = sh(f"juliarun cluster {command} --state-dir .", cwd=home)
        assert result.returncode == 1, result
        assert "not a local cluster's" in result.stderr and "nothing touched" in result.stderr, result.stderr
        assert user_files(home) == before
    assert not (home / ".juliarun-cluster").exists()


def test_up_refuses_to_overwrite_a_kubeconfig(home, tmp_path):
    kubeconfig = home / "kubeconfig"
    kubeconfig.write_text("the user's own\n")
    state = tmp_path / "state"
    result = sh(f"juliarun cluster up --state-dir {state} --kubeconfig {kubeconfig}", cwd=home)
    assert result.returncode == 1 and "exists" in result.stderr, result
    assert kubeconfig.read_text() == "the user's own\n" and not state.exists()
    result = sh(f"juliarun cluster down --state-dir {state} --kubeconfig {kubeconfig}", cwd=home)
    assert result.returncode == 0 and kubeconfig.read_text() == "the user's own\n"


def test_a_real_state_dir_down_removes_only_what_up_made(home, tmp_path):
    state = tmp_path / "cluster"
    up = sh(f"juliarun cluster up --state-dir {state}", cwd=home)
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip() == str(state / "kubeconfig")
    assert (state / ".juliarun-cluster").is_file()
    (state / "mine.txt").write_text("put here by the user\n")
    down = sh(f"juliarun cluster down --state-dir {state}", cwd=home)
    assert down.returncode == 0, down.stderr
    assert "left mine.txt" in down.stderr
    assert sorted(p.name for p in state.iterdir()) == ["mine.txt"]  # ours gone, theirs kept
    assert sh(f"juliarun cluster status --state-dir {state}", cwd=home).returncode == 1
    # `down` again: the directory is no cluster's any more, and stays as it is.
    again = sh(f"juliarun cluster down --state-dir {state}", cwd=home)
    assert again.returncode == 1 and (state / "mine.txt").exists()


def test_an_empty_directory_is_taken_and_kept(home, tmp_path):
    """`STATE=$(mktemp -d)`: up may use it; down empties it but leaves the directory it did not make."""
    state = tmp_path / "made-by-the-user"
    state.mkdir()
    assert sh(f"juliarun cluster up --state-dir {state}", cwd=home).returncode == 0
    assert sh(f"juliarun cluster down --state-dir {state}", cwd=home).returncode == 0
    assert state.is_dir() and list(state.iterdir()) == []
    # A state dir up created goes entirely.
    created = tmp_path / "new" / "cluster"
    assert sh(f"juliarun cluster up --state-dir {created}", cwd=home).returncode == 0
    assert sh(f"juliarun cluster down --state-dir {created}", cwd=home).returncode == 0
    assert not created.exists()


def test_cluster_env_puts_the_tools_on_path_and_points_kubeconfig_at_the_cluster(home, tmp_path):
    state = tmp_path / "cluster"
    assert sh(f"juliarun cluster up --state-dir {state}", cwd=home).returncode == 0
    try:
        printed = sh(f"juliarun cluster env --state-dir {state}", cwd=home)
        names = {line.split("=", 1)[0].removeprefix("export ") for line in printed.stdout.splitlines()}
        assert names == SETS_BY_COMMAND["juliarun cluster env"], printed.stdout
        # A shell that has nothing on PATH but the system's: after eval, the project's tools.
        script = (
            f'eval "$({JULIARUN} cluster env --state-dir {state})"\n'
            "command -v juliarun kubectl-juliarun kubectl helm\n"
            "kubectl get namespace default -o name\n"
            'echo "KUBECONFIG=$KUBECONFIG"\n'
        )
        env = {"HOME": os.environ["HOME"], "PATH": "/usr/bin:/bin"}
        result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == JULIARUN and lines[1].endswith("/kubectl-juliarun")
        assert lines[2].endswith("/kubectl") and lines[3].endswith("/helm")
        assert "namespace/default" in lines and f"KUBECONFIG={state / 'kubeconfig'}" in lines
    finally:
        assert sh(f"juliarun cluster down --state-dir {state}", cwd=home).returncode == 0
