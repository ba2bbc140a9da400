"""Benchmark of the JuliaRun emulator: request rate and getAllJobInfo latency at 10,000 jobs.

Starts the emulator as a subprocess on a free loopback port (its own process, so the
client does not share its interpreter), submits the jobs, then measures:
- simple requests/s (getJobStatus of random jobs, and getSystemStatus) from concurrent
  aiohttp client tasks over keep-alive connections;
- getAllJobInfo round-trip latency, p50/p99, with all jobs in one namespace;
- the server's own share of it: the emulator's state and JSON encoding timed in-process,
  without HTTP or the client.

    .venv/bin/python bench/bench_emulator.py [--jobs 10000] [--concurrency 8] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time

import aiohttp

QUERY = {"jruntok": base64.b64encode(b"bench").decode(), "jrunns": "bench"}
TYPES = [
    ("JuliaBatch", {"run_volume": "v", "start_script": "run.jl"}),
    ("JuliaParBatch", {"run_volume": "v", "start_script": "run.jl", "nworkers": "4"}),
    ("Notebook", {"run_volume": "v"}),
    ("MessageQ", {"run_volume": "v", "cfg_file": "mq.conf"}),
]


def start_server() -> tuple[subprocess.Popen, str]:
    # run-time 0: batch jobs keep running, so every job still has state to compute.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "juliarun_operator.emulator",
            "--port",
            "0",
            "--no-access-log",
            "--create-delay",
            "1",
            "--worker-delay",
            "0.5",
            "--run-time",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"emulator did not start: {line!r}")
    return proc, line.split()[-1]


async def call(session: aiohttp.ClientSession, url: str, path: str, **query: str):
    async with session.get(url + path, params={**QUERY, **query}) as response:
        body = await response.read()
        if response.status != 200 or not body.startswith(b'{"code": 0'):
            raise RuntimeError(f"{path}: HTTP {response.status}: {body[:200]!r}")
        return body


async def run_tasks(concurrency: int, work) -> None:
    await asyncio.gather(*(work(i) for i in range(concurrency)))


async def submit_all(session, url: str, jobs: int, concurrency: int) -> float:
    names = iter(range(jobs))

    async def worker(_):
        for i in names:
            job_type, params = TYPES[i % len(TYPES)]
            await call(session, url, f"/submitJob/{job_type}/", name=f"job-{i}", **params)

    start = time.perf_counter()
    await run_tasks(concurrency, worker)
    return jobs / (time.perf_counter() - start)


async def rate(session, url: str, seconds: float, concurrency: int, request) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(_):
        nonlocal done
        while time.perf_counter() < deadline:
            await request()
            done += 1

    start = time.perf_counter()
    await run_tasks(concurrency, worker)
    return done / (time.perf_counter() - start)


async def bench(args) -> dict:
    proc, url = start_server()
    try:
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            submit_rate = await submit_all(session, url, args.jobs, args.concurrency)
            await asyncio.sleep(2.0)  # let every job be created and its workers start
            rng = random.Random(1)  # noqa: S311 (seeded choice of jobs to poll, not secrets)

            def status():
                i = rng.randrange(args.jobs)
                job_type = TYPES[i % len(TYPES)][0]
                return call(session, url, f"/getJobStatus/{job_type}/", name=f"job-{i}")

            status_rate = await rate(session, url, args.seconds, args.concurrency, status)
            system_rate = await rate(
                session, url, args.seconds, args.concurrency, lambda: call(session, url, "/getSystemStatus/")
            )
            latencies, size = [], 0
            for _ in range(args.all_info_calls):
                start = time.perf_counter()
                size = len(await call(session, url, "/getAllJobInfo/"))
                latencies.append(time.perf_counter() - start)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    latencies.sort()
    return {
        "submit_rate": submit_rate,
        "status_rate": status_rate,
        "system_rate": system_rate,
        "all_p50_ms": 1000 * statistics.median(latencies),
        "all_p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "all_bytes": size,
    }


def server_compute_ms(jobs: int, calls: int) -> tuple[float, float]:
    """p50/p99 of what one getAllJobInfo costs the server before HTTP: state + JSON."""
    from juliarun_operator.emulator.handlers import gc_paused
    from juliarun_operator.emulator.state import Cluster, Timing
    from juliarun_operator.juliarun.decoding import decode_params

    cluster = Cluster(Timing(create_delay=1, worker_delay=0.5, run_time=0))
    for i in range(jobs):
        job_type, params = TYPES[i % len(TYPES)]
        cluster.submit("bench", f"job-{i}", job_type, decode_params(job_type, params))
    later = time.time() + 100
    cluster.clock = lambda: later  # every job created, its workers all started
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        with gc_paused():
            json.dumps({"code": 0, "data": cluster.all_job_info("bench")})
        times.append(time.perf_counter() - start)
    times.sort()
    return 1000 * statistics.median(times), 1000 * times[min(calls - 1, int(0.99 * calls))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8, help="client tasks (and connections)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each rate run")
    parser.add_argument("--all-info-calls", type=int, default=100)
    args = parser.parse_args()
    r = asyncio.run(bench(args))
    compute_p50, compute_p99 = server_compute_ms(args.jobs, args.all_info_calls)
    load = os.getloadavg()[0]
    print(
        f"python {platform.python_version()}, aiohttp {aiohttp.__version__}, "
        f"{os.cpu_count()} cores, {args.jobs} jobs, {args.concurrency} concurrent client tasks"
    )
    print(f"submitJob:              {r['submit_rate']:8.0f} requests/s")
    print(f"getJobStatus (random):  {r['status_rate']:8.0f} requests/s")
    print(f"getSystemStatus:        {r['system_rate']:8.0f} requests/s")
    print(
        f"getAllJobInfo:          p50 {r['all_p50_ms']:.1f} ms, p99 {r['all_p99_ms']:.1f} ms "
        f"({args.all_info_calls} calls, {r['all_bytes'] / 1e6:.2f} MB each)"
    )
    print(f"  of which server state + JSON: p50 {compute_p50:.1f} ms, p99 {compute_p99:.1f} ms")
    print(f"load average (1 min) at the end: {load:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
