"""kopf's storage for the operator, which uses kopf only to watch (imported with kopf)."""

from __future__ import annotations

from typing import Any

import kopf


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf copies every watched object to diff it for change handlers. The operator has none
    (it only watches), and the copy was a deep copy per event: a tenth of its CPU at 10,000
    objects (bench/RESULTS.md). Nothing is built, read or stored."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass
