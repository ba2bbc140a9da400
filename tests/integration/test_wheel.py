"""The package as a package: `python -m build` makes a wheel and an sdist, and the wheel,
installed into a fresh virtualenv far from the source tree, runs on its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
import requests

from harness import free_port, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
DIST = f"juliarun_operator-{VERSION}"


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return out


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory) -> Path:
    """A virtualenv with only the wheel (and its dependencies, at constraints.txt's versions)."""
    home = tmp_path_factory.mktemp("installed")
    subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True)
    pip = [str(home / "venv" / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(
        [
            *pip,
            "install",
            "--quiet",
            "--constraint",
            str(REPO / "constraints.txt"),
            str(dist / f"{DIST}-py3-none-any.whl"),
        ],
        check=True,
        timeout=600,
        cwd=home,
    )
    return home / "venv" / "bin"


def run(venv: Path, *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    # No PYTHONPATH, and a working directory outside the source tree: only the wheel is seen.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("JULIARUN_")}
    return subprocess.run(
        [str(venv / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd or venv.parent.parent,
        env=env,
    )


def test_build_makes_a_wheel_and_an_sdist(dist):
    wheel = zipfile.ZipFile(dist / f"{DIST}-py3-none-any.whl")
    names = wheel.namelist()
    assert "juliarun_operator/py.typed" in names
    assert f"{DIST}.dist-info/licenses/LICENSE" in names
    assert not any(n.startswith("tests/") for n in names)
    # The development tools are their own package (devtools/), for a checkout only.
    assert not any(n.startswith("juliarun_dev") for n in names), names
    assert not any(
        n.startswith(("juliarun_operator/devcluster/", "juliarun_operator/gen/", "juliarun_operator/dev"))
        for n in names
    ), names
    metadata = wheel.read(f"{DIST}.dist-info/METADATA").decode()
    assert f"Version: {VERSION}" in metadata and "License-Expression: MIT" in metadata
    assert "Requires-Dist: kopf<2,>=1.44" in metadata
    with tarfile.open(dist / f"{DIST}.tar.gz") as sdist:
        members = sdist.getnames()
    for path in ("LICENSE", "README.md", "pyproject.toml", "operator/juliarun_operator/cli/__init__.py"):
        assert f"{DIST}/{path}" in members
    assert not any(m.startswith(f"{DIST}/devtools") for m in members), members


def test_the_installed_package_is_the_wheel(venv):
    where = run(venv, "python", "-c", "import juliarun_operator; print(juliarun_operator.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv.parent), where.stdout
    assert not Path(where.stdout.strip()).is_relative_to(REPO)


def test_version_and_types(venv):
    version = run(venv, "juliarun", "--version")
    assert (version.returncode, version.stdout) == (0, f"juliarun {VERSION}\n")
    types = run(venv, "juliarun", "types")
    assert types.returncode == 0, types.stderr
    assert "JuliaParBatch" in types.stdout and "start_script" in types.stdout
    assert run(venv, "kubectl-juliarun", "--help").returncode == 0


def test_emulator_and_a_client_call(venv, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "emulator.log").open("w")
    emulator = subprocess.Popen(
        [str(venv / "juliarun"), "emulator", "--port", str(port), "--create-delay", "0"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        wait_for("the installed emulator", lambda: requests.get(f"{url}/_emulator/healthz", timeout=1).ok, 30)
        token = tmp_path / "token"
        token.write_text("wheel-token\n")
        conn = ["--url", url, "--namespace", "wheel", "--token-file", str(token)]
        submit = run(
            venv,
            "juliarun",
            *conn,
            "submit",
            "JuliaBatch",
            "hello",
            "run_volume=jobs",
            "start_script=hello.jl",
            cwd=tmp_path,
        )
        assert submit.returncode == 0, submit.stderr
        listed = run(
            venv,
            "python",
            "-c",
            "from juliarun_operator.juliarun import Client, Context\n"
            f"print(Client(Context(url={url!r}, token='wheel-token', namespace='wheel')).list_jobs())",
            cwd=tmp_path,
        )
        assert listed.stdout.strip() == "{'hello': 'JuliaBatch'}", listed.stderr
    finally:
        emulator.send_signal(signal.SIGTERM)
        assert emulator.wait(timeout=20) == 0
        log.close()


def test_development_tools_are_absent_and_say_where_to_run_them(venv):
    cluster = run(venv, "juliarun", "cluster", "status")
    assert cluster.returncode == 1 and cluster.stdout == ""
    assert cluster.stderr.count("\n") == 1 and "needs a source checkout" in cluster.stderr, cluster.stderr
    assert "make setup" in cluster.stderr, cluster.stderr
    absent = run(venv, "python", "-c", "import juliarun_dev")
    assert absent.returncode == 1 and "No module named 'juliarun_dev'" in absent.stderr, absent.stderr
