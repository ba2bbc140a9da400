"""The tiers, marked from what each test uses, so that any tier can be run alone:

- quick (tests/unit): no processes at all; `make quick`, well under a minute;
- `cluster`: the local control plane (a test using the `control_plane` fixture);
- `node`: the local node (root, containerd: tests/integration/test_node*.py);
- the rest of tests/integration: the JuliaRun server or the CLI as processes, no cluster.

`pytest -m "not cluster and not node"` runs everything that needs no Kubernetes.
"""

from __future__ import annotations

import pytest

# Modules that use what the machine has once (the node's bridge and iptables, port 8080 and
# the fixed directories the README and docs name): run one after another, in one process.
MACHINE_WIDE = ("test_node", "test_readme")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name.startswith("test_node"):
            item.add_marker(pytest.mark.node)
        elif "control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
        # `make test` runs two processes (pytest-xdist, --dist loadgroup): a module's tests stay
        # in one process (its module fixtures start once), the machine-wide ones all in one.
        machine_wide = item.path.name.startswith(MACHINE_WIDE)
        item.add_marker(pytest.mark.xdist_group("machine-wide" if machine_wide else item.path.stem))
    # The longest group first, so that the other process is not left to finish alone.
    items.sort(key=lambda item: not item.path.name.startswith(MACHINE_WIDE))
