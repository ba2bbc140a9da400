#!/usr/bin/env python3
"""The chart as released: a digest of its files, recorded with its version in .released.

    python3 hack/chart-release.py            # exit 1 if the chart changed since .released
                                             # but Chart.yaml's version did not
    python3 hack/chart-release.py --record   # after releasing: record version and digest

A chart's version must move with every change of the chart, or a user who pins a version
gets different charts under one number. tests/unit/test_release.py runs the check, so it
needs no git history or tags (CI works on a fresh clone).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

CHART = Path(__file__).resolve().parents[1] / "charts" / "juliarun-operator"
RECORD = CHART / ".released"
HEADER = """\
# The chart as last released: Chart.yaml's version and the digest of the chart's files.
# A change to the chart needs a new version in Chart.yaml (tests/unit/test_release.py);
# after releasing, record it: python3 hack/chart-release.py --record
"""


def chart_version(chart: Path = CHART) -> str:
    for line in (chart / "Chart.yaml").read_text().splitlines():
        if line.startswith("version:"):
            return line.partition(":")[2].strip().strip("\"'")
    raise ValueError(f"{chart / 'Chart.yaml'} has no version")


def digest(chart: Path = CHART) -> str:
    """sha256 over every file of the chart (path and content), .released excluded."""
    h = hashlib.sha256()
    for path in sorted(p for p in chart.rglob("*") if p.is_file() and p != chart / RECORD.name):
        h.update(str(path.relative_to(chart)).encode() + b"\0" + path.read_bytes() + b"\0")
    return "sha256:" + h.hexdigest()


def released(chart: Path = CHART) -> dict[str, str]:
    """{"version": ..., "digest": ...} of the last release."""
    pairs = {}
    for line in (chart / RECORD.name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(":")
            pairs[key.strip()] = value.strip()
    return pairs


def problem(chart: Path = CHART) -> str | None:
    """Why the chart's version must change, or None."""
    last = released(chart)
    if _numbers(chart_version(chart)) < _numbers(last["version"]):
        return f"Chart.yaml's version {chart_version(chart)} is lower than the released {last['version']}"
    if digest(chart) != last["digest"] and chart_version(chart) == last["version"]:
        return (
            f"the chart changed since its release {last['version']}: raise `version` in "
            f"{chart / 'Chart.yaml'} (and say what changed in artifacthub.io/changes and CHANGELOG.md)"
        )
    return None


def _numbers(version: str) -> tuple[int, ...]:
    """MAJOR.MINOR.PATCH as numbers, for ordering (a pre-release suffix is ignored)."""
    return tuple(int(part) for part in version.split("-")[0].split("+")[0].split("."))


def record(chart: Path = CHART) -> None:
    (chart / RECORD.name).write_text(HEADER + f"version: {chart_version(chart)}\ndigest: {digest(chart)}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--record", action="store_true", help="record the chart as released")
    args = parser.parse_args()
    if args.record:
        record()
        print(f"recorded {chart_version()} {digest()}")
        return 0
    message = problem()
    if message:
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
