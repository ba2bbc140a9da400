"""docs/install.md's "Try it locally", run block by block as written, on a real node: the
node and the image, JuliaRun restricted to a token of ours, the chart pushed to an OCI registry
on loopback and installed from it with `helm install oci://...`, a JuliaRunJob Ready, `helm
test`, and everything removed again. Also docs/node.md's block.

Root only, one node per machine (run after test_node.py's node is gone). The blocks run in a
copy of the checkout (its .venv linked), so that the ./juliarun.token they write is the copy's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from chart_helpers import BASE_ENV
from support.docs import run_block

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
# The state directories the blocks name (docs/install.md, docs/node.md), as written there.
STATE = Path("/tmp/juliarun-local")  # noqa: S108
NODE_STATE = Path("/tmp/juliarun-node")  # noqa: S108
REGISTRY = "127.0.0.1:5000"  # and their registry


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("checkout") / "juliarun-operator"
    skip = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".*_cache", ".hypothesis", "juliarun.token")
    shutil.copytree(REPO, copy, ignore=skip, symlinks=True)
    (copy / ".venv").symlink_to(REPO / ".venv")
    return copy


# A reader's shell: none of this session's KUBECONFIG or JuliaRun settings.
READER = {**BASE_ENV, "HOME": os.environ.get("HOME", "/root")}


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def test_try_it_locally_as_written(checkout):
    assert not STATE.exists(), (
        f"{STATE} exists: a cluster of an earlier run? `juliarun cluster down --state-dir {STATE}`"
    )
    down = False
    try:
        out = output(run_block("docs/install.md", "local-up", env=READER, cwd=checkout))
        assert " Ready " in out, out
        output(run_block("docs/install.md", "local-juliarun", env=READER, cwd=checkout))
        token = (checkout / "juliarun.token").read_text().strip()
        assert len(token) == 48

        out = output(run_block("docs/install.md", "local-install", env=READER, cwd=checkout))
        assert f"Pushed: {REGISTRY}/charts/juliarun-operator:" in out, out
        assert "STATUS: deployed" in out, out
        tags = requests.get(f"http://{REGISTRY}/v2/charts/juliarun-operator/tags/list", timeout=5).json()
        assert tags["tags"], tags

        out = output(run_block("docs/install.md", "local-job", env=READER, cwd=checkout))
        assert "juliarunjob.juliarun.dev/hello condition met" in out, out

        out = output(run_block("docs/install.md", "local-test", env=READER, cwd=checkout))
        assert "Phase:          Succeeded" in out, out
        assert "the operator acts" in out and "default connection up" in out, out

        out = output(run_block("docs/install.md", "local-down", env=READER, cwd=checkout))
        down = True
        assert 'release "juliarun-operator" uninstalled' in out, out
        assert not STATE.exists(), "cluster down left its state directory"
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://{REGISTRY}/v2/", timeout=2)
    finally:
        if not down:
            # What local-down would have removed, so that the next test finds a clean machine.
            subprocess.run(["bash", "hack/registry/serve.sh", "stop"], cwd=checkout, check=False)
            subprocess.run(
                [str(REPO / ".venv" / "bin" / "juliarun"), "cluster", "down", "--state-dir", str(STATE)],
                check=False,
            )


def test_node_md_block_as_written(checkout):
    out = output(run_block("docs/node.md", "node-up-down", env=READER, cwd=checkout))
    assert "juliarun-node" in out and " Ready " in out, out
    assert not NODE_STATE.exists()
