"""`make demo-node`, run exactly as README.md shows it (root; runs after test_node.py, whose
node must be gone first: one node per machine)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from juliarun_dev import devnode

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def machine_state() -> dict[str, object]:
    """What a node adds to the machine: the bridge, iptables chains, its owner record."""
    chains = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return {
        "bridge": Path(f"/sys/class/net/{devnode.BRIDGE}").exists(),
        "kube chains": sorted(line for line in chains.splitlines() if "KUBE-" in line),
        "owner": devnode.OWNER_FILE.exists(),
    }


def test_make_demo_node(tmp_path):
    before = machine_state()
    result = subprocess.run(["make", "demo-node"], cwd=REPO, capture_output=True, text=True, timeout=1500)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    # The operator Pod ran from the chart and handled the jobs: Ready, scaled to 6, deleted.
    assert "juliarunjob.juliarun.dev/sim condition met" in out
    assert "juliarunjob.juliarun.dev/web condition met" in out
    assert 'juliarunjob.juliarun.dev "sim" deleted' in out
    assert 'release "juliarun-operator" uninstalled' in out
    assert "6/6" in out
    # The clean stop left nothing behind.
    assert machine_state() == before == {"bridge": False, "kube chains": [], "owner": False}
