"""The tiers, marked from what each test uses, so that any tier can be run alone:

- quick (tests/unit): no processes at all; `make quick`, well under a minute;
- `cluster`: the local control plane (a test using the `control_plane` fixture);
- `node`: the local node (root, containerd: tests/integration/test_node*.py);
- the rest of tests/integration: the JuliaRun server or the CLI as processes, no cluster.

`pytest -m "not cluster and not node"` runs everything that needs no Kubernetes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

# Modules that use what the machine has once (the node's bridge and iptables, port 8080 and
# the fixed directories the README and docs name): run one after another, in one process.
MACHINE_WIDE = ("test_node", "test_readme")


def machine_wide(path: str) -> bool:
    return Path(path).name.startswith(MACHINE_WIDE)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name.startswith("test_node"):
            item.add_marker(pytest.mark.node)
        elif "control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
    # The longest share first (the machine-wide modules), so that with two processes the other
    # is not left to finish alone.
    items.sort(key=lambda item: not machine_wide(str(item.path)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`make test` runs two processes (pytest-xdist): a module's tests in one (its module
    fixtures start once), the machine-wide modules all in one, one after another. (xdist's
    own --dist loadgroup did not keep its groups together here: xdist 3.8, pytest 9.2.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "machine-wide" if machine_wide(path) else path

    return ByModule(config, log)
