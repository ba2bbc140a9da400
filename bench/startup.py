"""How long `juliarun` takes to answer when it has nothing to fetch: `--help` and `types`.

Each command runs --runs times in a fresh process; prints the median and the fastest, and the
same for a bare `python -c pass` (the interpreter's own start, which no change of ours moves).

    .venv/bin/python bench/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

JULIARUN = Path(sys.executable).with_name("juliarun")


def timed(args: list[str], runs: int) -> tuple[float, float]:
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), min(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    for label, args in (
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("juliarun --help", [str(JULIARUN), "--help"]),
        ("juliarun types", [str(JULIARUN), "types"]),
    ):
        median, best = timed(args, runs)
        print(f"| `{label}` | {median * 1000:.0f} ms | {best * 1000:.0f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
