"""The tiers, marked from what each test uses, so that any tier can be run alone:

- quick (tests/unit): no processes at all; `make quick`, well under a minute;
- `cluster`: the local control plane (a test using the `control_plane` fixture);
- `node`: the local node (root, containerd: tests/integration/test_node*.py);
- the rest of tests/integration: the JuliaRun server or the CLI as processes, no cluster.

`pytest -m "not cluster and not node"` runs everything that needs no Kubernetes.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name.startswith("test_node"):
            item.add_marker(pytest.mark.node)
        elif "control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
