"""No uninstall or GitOps prune may delete a CRD we ship: deleting it deletes every object of it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COPIES = ["crds", "charts/juliarun-operator/crds", "deploy/crds"]


@pytest.mark.parametrize("directory", COPIES)
def test_every_crd_is_kept_by_helm_argocd_and_flux(directory):
    crds = [
        doc
        for path in sorted((REPO / directory).glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    assert {c["metadata"]["name"] for c in crds} == {"juliarunjobs.juliarun.dev"}
    for crd in crds:
        annotations = crd["metadata"].get("annotations", {})
        assert annotations.get("helm.sh/resource-policy") == "keep", crd["metadata"]["name"]
        argocd = annotations.get("argocd.argoproj.io/sync-options", "").split(",")
        assert "Prune=false" in argocd and "Delete=false" in argocd, crd["metadata"]["name"]
        assert annotations.get("kustomize.toolkit.fluxcd.io/prune") == "disabled", crd["metadata"]["name"]
