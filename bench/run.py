"""Operator benchmark: convergence, steady state, scale latency, memory and CPU at N objects.

One session, one fresh local control plane (etcd + kube-apiserver, devcluster), warmed up
with 500 objects, one JuliaRun emulator with no delays (so JuliaRun is never the
bottleneck; its counters say when each job's calls first came), and for each size N:

1. floor: a plain client creates N JuliaRunJobs in its own namespace and writes each one's
   final status (status subresource), as fast as it can: the least work the same result needs;
2. operator convergence: a fresh operator watches another namespace (and its own JuliaRun
   namespace); N objects are created with a thread pool; a watch records when each becomes
   Ready (phase Running, Ready=True);
   1 and 2 run --rounds times (default 3), in alternating order, the last round floor first;
   the ratio is of the medians;
3. steady state (the last round's operator): several sync intervals with nothing changing:
   JuliaRun calls (emulator counters), status writes (operator metric) and all writes to
   juliarunjobs and events as the API server counts them (apiserver_request_total), per interval;
4. scale latency (each size >= 1,000, or --quick): spec.parallelism patched on
   200 objects one by one; the emulator says when each setJobScale arrived;
5. comparison: the operator stopped, bench/per_object_poller.py polls the same objects the
   per-object way (3 calls per object per interval) for the same intervals.

Operator RSS peak (VmHWM) and CPU (utime+stime) per phase come from /proc, and so does the
CPU of the API server, etcd and this benchmark during each floor and convergence (on two
shared cores, the time follows the CPU all of them spend).

    .venv/bin/python bench/run.py [--sizes 1000,10000] [--rounds 3] [--interval 5] [--quick]

Writes bench/results.json (and prints it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kopf
import kubernetes
import requests
import yaml

from juliarun_dev import devcluster
from juliarun_operator.api import FINALIZER
from juliarun_operator.juliarun import JobInfo, JobScale, JobStatus
from juliarun_operator.reconcile import decision as d
from juliarun_operator.reconcile.decision.mapping import job_params

ROOT = Path(__file__).resolve().parents[1]
GROUP, VERSION, PLURAL = "juliarun.dev", "v1alpha1", "juliarunjobs"
TOKEN, JRUN_NS = "bench-token", "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
CREATE_WORKERS = 32  # client threads that create objects (and, in the floor, write their status)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def job(name: str, parallelism: int = 1) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "JuliaRunJob",
        "metadata": {"name": name},
        # No Service of its own: the benchmark measures the job's path (its writes are the
        # object's own); publishing adds a Service and an EndpointSlice per object.
        "spec": {
            "type": "Webserver",
            "runVolume": "v",
            "cfgFile": "c",
            "parallelism": parallelism,
            "service": {"enabled": False},
        },
    }


def names(n: int) -> list[str]:
    return [f"b-{i:05d}" for i in range(n)]


# --- processes --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def memory_mb(pid: int) -> dict:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmHWM", "VmRSS")):
            key, value = line.split(":")
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def start_listening(args: list[str], logfile: Path, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """A server that prints 'listening on URL' first; its stderr goes to logfile."""
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=logfile.open("w"), text=True, env=env, start_new_session=True
    )
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"{args[:4]} did not start: {line!r}; see {logfile}")
    return proc, line.split()[-1]


def stop(proc: subprocess.Popen | None) -> None:
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(what: str, check, timeout: float = 60.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception:  # noqa: S110 (a not-yet-ready server or object: keep polling)
            pass
        time.sleep(interval)
    raise SystemExit(f"timed out waiting for {what}")


# --- Kubernetes ---------------------------------------------------------------------------


class Cluster:
    def __init__(self, info: devcluster.ClusterInfo, clients: int = CREATE_WORKERS):
        self.info, self.clients = info, clients
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=str(info.kubeconfig), client_configuration=config)
        config.connection_pool_maxsize = clients + 8
        self.api = kubernetes.client.ApiClient(config)
        self.custom = kubernetes.client.CustomObjectsApi(self.api)
        self.core = kubernetes.client.CoreV1Api(self.api)

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return subprocess.run(
            [str(self.info.kubectl), "--kubeconfig", str(self.info.kubeconfig), *args],
            check=True,
            capture_output=True,
            text=True,
            input=input,
        ).stdout

    def namespace(self, name: str) -> str:
        self.core.create_namespace({"metadata": {"name": name}})
        return name

    def finalizer_policy(self, ns: str) -> None:
        """deploy/finalizer-policy.yaml, its binding limited to `ns` (as the chart binds it to
        watchNamespaces): the API server puts the finalizer on at creation. The floor's
        namespace is left out, so the floor pays nothing for it."""
        policy, binding = yaml.safe_load_all((ROOT / "deploy" / "finalizer-policy.yaml").read_text())
        binding["metadata"]["name"] += f"-{ns}"
        binding["spec"]["matchResources"] = {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}
        }
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([policy, binding]))
        probe = ["create", "--dry-run=server", "-n", ns, "-f", "-", "-o", "jsonpath={.metadata.finalizers}"]
        body = json.dumps(job("probe"))
        wait_for("the finalizer policy", lambda: FINALIZER in self.kubectl(*probe, input=body))

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of the API server, etcd and this benchmark (its clients and watch):
        on two shared cores, what the operator's run spends beyond the floor's shows here."""
        return {
            "apiserver": cpu_seconds(self.info.apiserver_pid),
            "etcd": cpu_seconds(self.info.etcd_pid),
            "benchmark": round(time.process_time(), 1),
        }

    def writes(self) -> dict[str, int]:
        """The API server's own count of writes to juliarunjobs and events, by verb/subresource."""
        out: dict[str, int] = {}
        pattern = re.compile(r"^apiserver_request_total\{(.*)\} (\S+)$")
        for line in self.kubectl("get", "--raw", "/metrics").splitlines():
            m = pattern.match(line)
            if not m:
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            if labels.get("resource") not in ("juliarunjobs", "events") or labels.get("verb") not in (
                "PATCH",
                "PUT",
                "POST",
                "DELETE",
                "APPLY",
                "CREATE",
                "UPDATE",
            ):
                continue
            key = f"{labels['resource']}/{labels.get('subresource') or '-'}/{labels['verb']}"
            out[key] = out.get(key, 0) + int(float(m.group(2)))
        return out

    def create_all(self, ns: str, items: list[str], then=None) -> float:
        """Create the objects with a thread pool; `then(name)` runs after each create."""

        def one(name: str) -> None:
            self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, job(name))
            if then:
                then(name)

        started = time.monotonic()
        with ThreadPoolExecutor(self.clients) as pool:
            list(pool.map(one, items))
        return time.monotonic() - started


def delta(after: dict, before: dict) -> dict:
    changed = (k for k in after if after.get(k, 0) != before.get(k, 0))
    return {k: round(after.get(k, 0) - before.get(k, 0), 1) for k in changed}


def is_ready(obj: dict) -> bool:
    status = obj.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )


class ReadyWatch(threading.Thread):
    """Watches a namespace; records when each object is first seen Ready and submitted."""

    def __init__(self, cluster: Cluster, ns: str):
        super().__init__(daemon=True)
        self.cluster, self.ns = cluster, ns
        self.ready: dict[str, float] = {}
        self.submitted: dict[str, float] = {}
        self.complete: dict[str, float] = {}  # wall time each was first seen Complete
        self.events = 0
        self.halt = threading.Event()

    def run(self) -> None:
        custom = self.cluster.custom
        while not self.halt.is_set():
            try:
                listing = custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL)
            except Exception:
                return  # the control plane is going away
            for obj in listing["items"]:
                self._see(obj)
            rv = listing["metadata"]["resourceVersion"]
            try:
                for event in kubernetes.watch.Watch().stream(
                    custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.ns,
                    PLURAL,
                    resource_version=rv,
                    timeout_seconds=60,
                ):
                    if self.halt.is_set():
                        return
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._see(event["object"])
            except Exception:  # 410 Gone, or the server closed the stream: list again
                if self.halt.is_set():
                    return
                time.sleep(0.5)

    def _see(self, obj: dict) -> None:
        self.events += 1
        name, now = obj["metadata"]["name"], time.monotonic()
        if (obj.get("status") or {}).get("submitted") and name not in self.submitted:
            self.submitted[name] = now
        if is_ready(obj) and name not in self.ready:
            self.ready[name] = now
        conditions = (obj.get("status") or {}).get("conditions") or []
        if name not in self.complete and any(
            c.get("type") == "Complete" and c.get("status") == "True" for c in conditions
        ):
            self.complete[name] = time.time()


# --- the pieces of one run ---------------------------------------------------------------


def status_for(body: dict, info: JobInfo) -> dict | None:
    """The status write the operator's own decision makes for `body` given JuliaRun's `info`
    (None: nothing to write)."""
    obj = d.ObjectState.of(body)
    memory = d.Memory(name=info.name, submit=d.Outcome.LANDED)
    facts = d.Facts(
        now=time.time(),
        memory=memory,
        params=job_params(obj.spec, obj.namespace),
        snapshot={info.name: info},
        snapshot_time=time.time(),
    )
    writes = [a.status for a in d.reconcile(obj, facts).actions if a.kind is d.Kind.WRITE_STATUS]
    return writes[0] if writes else None


def final_status(ns: str, name: str) -> dict:
    """The status the operator ends with for a Webserver at scale 1 (its own pure function)."""
    info = JobInfo(name, "Webserver", JobStatus(False, 0, 1, True, False), JobScale(1, 1), ["http://x/"])
    body = {
        "metadata": {
            "namespace": ns,
            "name": name,
            "uid": name,
            "generation": 1,
            "finalizers": [FINALIZER],
        },
        "spec": job(name)["spec"],
    }
    return status_for(body, info) or {}


def floor(cluster: Cluster, n: int, label: str) -> dict:
    ns = cluster.namespace(f"floor-{n}-{label}")

    def write_status(name: str) -> None:
        cluster.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, ns, PLURAL, name, {"status": final_status(ns, name)}
        )

    # The same observer as the operator's run, timed the same way: its cost is nobody's.
    watch = ReadyWatch(cluster, ns)
    watch.start()
    time.sleep(1.0)  # the watch is open before the first create
    w0, cpu0, t0 = cluster.writes(), cluster.cpu(), time.monotonic()
    cluster.create_all(ns, names(n), then=write_status)
    wait_for("the floor's objects seen Ready", lambda: len(watch.ready) == n, 120)
    watch.halt.set()
    seconds = max(watch.ready.values()) - t0
    cpu = delta(cluster.cpu(), cpu0)
    writes = delta(cluster.writes(), w0)
    ready = sum(
        is_ready(o) for o in cluster.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
    )
    # No finalizers here: gone at once; keeps the store as small for the operator's run.
    cluster.custom.delete_collection_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)
    return {"seconds": round(seconds, 2), "ready": ready, "apiserver_writes": writes, "cpu_s": cpu}


class Env:
    """The session: control plane, emulator, and where logs go."""

    def __init__(self, workdir: Path, interval: float, clients: int = CREATE_WORKERS):
        self.workdir, self.interval = workdir, interval
        self.info = devcluster.up(state_dir=workdir / "cluster")
        self.cluster = Cluster(self.info, clients)
        for crd in sorted((ROOT / "crds").glob("*.yaml")):
            self.cluster.kubectl("apply", "-f", str(crd))
        wait_for("the CRD", lambda: self.cluster.kubectl("get", "crd", f"{PLURAL}.{GROUP}"), 30)
        self.emulator, self.emu_url = start_listening(
            [
                sys.executable,
                "-m",
                "juliarun_operator.emulator",
                "--port",
                "0",
                "--no-access-log",
                "--create-delay",
                "0",
                "--worker-delay",
                "0",
                "--run-time",
                "0",
            ],
            workdir / "emulator.log",
        )
        self.env = {
            **os.environ,
            "KUBECONFIG": str(self.info.kubeconfig),
            "JULIARUN_URL": self.emu_url,
            "JULIARUN_TOKEN": TOKEN,
            "JULIARUN_NAMESPACE": JRUN_NS,
        }

    def emulator_ops(self) -> dict:
        return requests.get(f"{self.emu_url}/_emulator/counters", timeout=30).json()["operations"]

    def close(self) -> None:
        stop(getattr(self, "emulator", None))
        devcluster.down(self.workdir / "cluster")


class OperatorProc:
    def __init__(self, env: Env, ns: str, max_workers: int, jrun_ns: str):
        self.jrun_ns = jrun_ns  # its own JuliaRun namespace: no round sees another's jobs
        self.port = devcluster.processes.free_port()
        self.logfile = env.workdir / f"operator-{ns}.log"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "juliarun_operator.cli",
                "operator",
                # As the chart runs it: one replica holding a Lease.
                "--lease-name",
                "juliarun-operator",
                "--lease-namespace",
                ns,
                "--sync-interval",
                str(env.interval),
                "--metrics-port",
                str(self.port),
                "--workers",
                str(max_workers),
                "--watch-namespace",
                ns,
            ],
            stdout=self.logfile.open("w"),
            stderr=subprocess.STDOUT,
            env={**env.env, "JULIARUN_NAMESPACE": jrun_ns},
            start_new_session=True,
        )
        wait_for("the operator", lambda: requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).ok)
        wait_for("the operator holding the Lease", lambda: "acting: this replica" in self.logfile.read_text())

    def metrics(self) -> dict[str, float]:
        out = {}
        for line in requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=30).text.splitlines():
            if line.startswith(
                ("juliarun_calls_total", "juliarun_status_writes_total", "juliarun_reconciles_total")
            ):
                key, value = line.rsplit(" ", 1)
                out[key] = float(value)
        return out

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)


def converge(env: Env, op: OperatorProc, ns: str, n: int, timeout: float) -> dict:
    cluster = env.cluster
    watch = ReadyWatch(cluster, ns)
    watch.start()
    time.sleep(1.0)  # the watch is open before the first create
    w0, e0, cpu0 = cluster.writes(), env.emulator_ops(), op.cpu()
    ecpu0, kcpu0 = cpu_seconds(env.emulator.pid), cluster.cpu()
    t0 = time.monotonic()
    created: list[float] = []  # when the last create returned: the pace the operator can follow at best

    def create() -> None:
        cluster.create_all(ns, names(n))
        created.append(time.monotonic())

    creator = threading.Thread(target=create, daemon=True)
    creator.start()
    timeline, next_mark = [], t0
    while len(watch.ready) < n and time.monotonic() - t0 < timeout:
        time.sleep(0.2)
        if time.monotonic() >= next_mark:  # the count over time, for a partial result
            timeline.append((round(time.monotonic() - t0), len(watch.submitted), len(watch.ready)))
            next_mark += 10
    creator.join()
    done = len(watch.ready)
    last = max(watch.ready.values()) if watch.ready else time.monotonic()
    result = {
        "seconds": round(last - t0, 2) if done == n else None,
        "ready": done,
        "timed_out": done < n,
        "all_submitted_s": round(max(watch.submitted.values()) - t0, 2)
        if len(watch.submitted) == n
        else None,
        "half_ready_s": round(sorted(watch.ready.values())[n // 2 - 1] - t0, 2) if done >= n // 2 else None,
        "all_created_s": round(created[0] - t0, 2) if created else None,
        "operator_cpu_s": round(op.cpu() - cpu0, 1),
        # JuliaRun shares the cores here (in a cluster it runs elsewhere); the floor never calls it.
        "emulator_cpu_s": round(cpu_seconds(env.emulator.pid) - ecpu0, 1),
        "cpu_s": delta(cluster.cpu(), kcpu0),
        "apiserver_writes": delta(cluster.writes(), w0),
        "juliarun_calls": delta(env.emulator_ops(), e0),
        "timeline_s_submitted_ready": timeline,
    }
    result["watch"] = watch
    return result


def steady(env: Env, op: OperatorProc | None, intervals: int) -> dict:
    cluster = env.cluster
    time.sleep(env.interval)  # let anything still in flight finish before counting
    w0, e0, m0 = cluster.writes(), env.emulator_ops(), op.metrics()
    cpu0, ecpu0 = op.cpu(), cpu_seconds(env.emulator.pid)
    time.sleep(intervals * env.interval)
    w1, e1, m1 = cluster.writes(), env.emulator_ops(), op.metrics()
    per = lambda d: {k: round(v / intervals, 2) for k, v in d.items()}  # noqa: E731
    return {
        "intervals": intervals,
        "juliarun_calls_per_interval": per(delta(e1, e0)),
        "status_writes_per_interval": round(
            (m1.get("juliarun_status_writes_total", 0) - m0.get("juliarun_status_writes_total", 0))
            / intervals,
            2,
        ),
        "apiserver_writes_per_interval": per(delta(w1, w0)),
        "operator_cpu_s_per_interval": round((op.cpu() - cpu0) / intervals, 3),
        "emulator_cpu_s_per_interval": round((cpu_seconds(env.emulator.pid) - ecpu0) / intervals, 3),
    }


def scale_latency(env: Env, ns: str, jrun_ns: str, count: int) -> dict:
    cluster = env.cluster
    # JuliaRun knows the job by status.jobName (namespace-name-hash), not the object's name.
    job_names = {
        o["metadata"]["name"]: o["status"]["jobName"]
        for o in cluster.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
    }
    requests.post(f"{env.emu_url}/_emulator/counters/reset", timeout=10)
    patched: dict[str, float] = {}
    for name in names(count):
        cluster.custom.patch_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, name, {"spec": {"parallelism": 2}}
        )
        patched[job_names[name]] = time.time()  # the change is committed once the PATCH has returned
        time.sleep(0.05)  # one by one, as people and pipelines change objects

    def first_scale_calls() -> dict[str, float]:
        """When the emulator first read each job's setJobScale since the reset."""
        first = requests.get(f"{env.emu_url}/_emulator/counters", timeout=30).json()["first_call"]
        return {n: ops["setJobScale"] for n, ops in first.get(jrun_ns, {}).items() if "setJobScale" in ops}

    def all_arrived() -> dict[str, float]:
        calls = first_scale_calls()
        return calls if set(patched) <= set(calls) else {}

    try:
        seen = wait_for("every setJobScale", all_arrived, timeout=120, interval=0.5)
    except SystemExit:
        seen = first_scale_calls()
    lat = sorted(seen[n] - patched[n] for n in patched if n in seen)
    pick = lambda q: round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else None  # noqa: E731
    return {
        "objects": count,
        "arrived": len(lat),
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
        "max_ms": round(1000 * lat[-1], 1) if lat else None,
    }


def batch_latency(env: Env, ns: str, jrun_ns: str, count: int) -> dict:
    """From JuliaRun ending a batch job (the emulator ends them on request and says when) to
    the object's Complete condition, seen on a watch; jobs ended ten at a time, 0.1 s apart,
    while the `count` objects run beside the others of the round."""
    cluster = env.cluster
    watch = ReadyWatch(cluster, ns)
    watch.start()
    batch = [f"batch-{i:04d}" for i in range(count)]
    spec = {"type": "JuliaBatch", "runVolume": "v", "startScript": "s.jl"}
    for name in batch:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "JuliaRunJob",
            "metadata": {"name": name},
            "spec": spec,
        }
        cluster.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)

    def running() -> dict[str, str]:
        items = cluster.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
        jobs = {
            o["metadata"]["name"]: o["status"]["jobName"]
            for o in items
            if o["metadata"]["name"] in batch and (o.get("status") or {}).get("created")
        }
        return jobs if len(jobs) == count else {}

    job_of = wait_for("the batch jobs running", running, timeout=300, interval=0.5)
    ended: dict[str, float] = {}
    for i in range(0, count, 10):
        chunk = [job_of[n] for n in batch[i : i + 10]]
        answer = requests.post(
            f"{env.emu_url}/_emulator/complete", json={"namespace": jrun_ns, "names": chunk}, timeout=30
        )
        ended.update(answer.json())
        time.sleep(0.1)
    with contextlib.suppress(SystemExit):  # what did not complete in time is counted as such
        wait_for(
            "every batch job Complete", lambda: set(batch) <= set(watch.complete), timeout=120, interval=0.2
        )
    watch.halt.set()
    lat = sorted(watch.complete[n] - ended[job_of[n]] for n in batch if n in watch.complete)
    pick = lambda q: round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else None  # noqa: E731
    return {
        "objects": count,
        "complete": len(lat),
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
        "max_ms": round(1000 * lat[-1], 1) if lat else None,
    }


def per_object(env: Env, ns: str, jrun_ns: str, intervals: int) -> dict:
    cluster = env.cluster
    w0, e0, ecpu0 = cluster.writes(), env.emulator_ops(), cpu_seconds(env.emulator.pid)
    started = time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "per_object_poller.py"),
            "--namespace",
            ns,
            "--interval",
            str(env.interval),
            "--intervals",
            str(intervals),
            "--workers",
            "16",
        ],
        env={**env.env, "JULIARUN_NAMESPACE": jrun_ns},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wall = time.monotonic() - started
    report = json.loads(out.strip().splitlines()[-1])
    rounds = report["intervals"][1:] or report["intervals"]  # the first round may write a change
    return {
        "objects": report["objects"],
        "rounds": report["intervals"],
        "errors": report["errors"],
        "juliarun_calls_per_interval": round(sum(r["calls"] for r in rounds) / len(rounds), 1),
        "round_seconds_max": max(r["seconds"] for r in rounds),
        "status_writes_per_interval": round(sum(r["writes"] for r in rounds) / len(rounds), 2),
        "poller_cpu_s_per_interval": round(report["cpu_seconds"] / intervals, 3),
        "emulator_cpu_s_per_interval": round((cpu_seconds(env.emulator.pid) - ecpu0) / intervals, 3),
        "apiserver_writes_total": delta(cluster.writes(), w0),
        "juliarun_calls_total": delta(env.emulator_ops(), e0),
        "wall_s": round(wall, 1),
    }


def run_size(env: Env, n: int, args) -> dict:
    """`args.rounds` rounds of floor and operator convergence, their order alternating (the
    last round runs the floor first): the floor alone moved 36-43 s at 10k within an hour,
    so one pair decides nothing. The ratio is of the medians. The last round's operator
    goes on to the steady state, scale latency, memory and the per-object comparison."""
    result: dict = {"n": n, "rounds": []}
    for i in range(args.rounds):
        last = i == args.rounds - 1
        operator_first = (args.rounds - 1 - i) % 2 == 1
        if not operator_first:
            log(f"N={n} round {i + 1}: floor")
            result["floor"] = floor(env.cluster, n, str(i))
        ns = env.cluster.namespace(f"op-{n}-{i}")
        if args.finalizer_policy == "on":
            env.cluster.finalizer_policy(ns)
        op = OperatorProc(env, ns, args.max_workers, f"{JRUN_NS}-{n}-{i}")
        try:
            conv = converge(env, op, ns, n, args.timeout)
            watch = conv.pop("watch")
            watch.halt.set()
            result["convergence"] = conv
            log(f"N={n} round {i + 1}: convergence {conv['seconds']} s ({conv['ready']}/{n} ready)")
            if last and not conv["timed_out"]:
                result["operator_metrics_after_convergence"] = {k: v for k, v in op.metrics().items() if v}
                result["steady"] = steady(env, op, args.steady_intervals)
                log(f"N={n}: steady {result['steady']}")
                if n in args.scale_at:
                    result["scale_latency"] = scale_latency(env, ns, op.jrun_ns, min(args.scale_objects, n))
                    log(f"N={n}: scale latency {result['scale_latency']}")
                    time.sleep(2 * env.interval)  # the syncer reports the new scale
                result["batch_latency"] = batch_latency(env, ns, op.jrun_ns, min(args.scale_objects, n))
                log(f"N={n}: batch completion to Complete {result['batch_latency']}")
                result["operator_cpu_total_s"] = round(op.cpu(), 1)
        finally:
            result["memory_mb"] = memory_mb(op.proc.pid) if op.proc.poll() is None else None
            stop(op.proc)
        if operator_first:
            log(f"N={n} round {i + 1}: floor")
            result["floor"] = floor(env.cluster, n, str(i))
        result["rounds"].append(
            {
                "order": "operator, floor" if operator_first else "floor, operator",
                "floor_s": result["floor"]["seconds"],
                "operator_s": conv["seconds"],
                "ratio": round(conv["seconds"] / result["floor"]["seconds"], 2) if conv["seconds"] else None,
            }
        )
        if conv["timed_out"]:
            return result
    floors = [r["floor_s"] for r in result["rounds"]]
    operators = [r["operator_s"] for r in result["rounds"]]
    result["floor_median_s"], result["operator_median_s"] = (
        statistics.median(floors),
        statistics.median(operators),
    )
    result["ratio_to_floor"] = round(result["operator_median_s"] / result["floor_median_s"], 2)
    log(f"N={n}: rounds {result['rounds']}; ratio of the medians {result['ratio_to_floor']}")
    log(f"N={n}: operator stopped; per-object poller")
    result["per_object"] = per_object(env, ns, op.jrun_ns, args.steady_intervals)
    log(f"N={n}: per-object {result['per_object']}")
    return result


def machine() -> dict:
    mem = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
    return {
        "nproc": os.cpu_count(),
        "mem_gib": round(int(mem) / 2**20, 1),
        "python": platform.python_version(),
        "kopf": kopf.__version__ if hasattr(kopf, "__version__") else "?",
        "kubernetes_client": kubernetes.__version__,
        "control_plane": devcluster.read_versions(),
        "loadavg_start": os.getloadavg(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--quick", action="store_true", help="a smoke run: N=100, 2 s intervals")
    parser.add_argument("--interval", type=float, default=5.0, help="sync interval, seconds")
    parser.add_argument("--steady-intervals", type=int, default=5)
    parser.add_argument("--scale-objects", type=int, default=200)
    parser.add_argument(
        "--scale-at", default=None, help="sizes at which to measure scale latency (default: each >= 1,000)"
    )
    parser.add_argument(
        "--finalizer-policy",
        choices=["on", "off"],
        default="on",
        help="the API server puts the finalizer on at creation (deploy/finalizer-policy.yaml)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="floor and operator runs per size, order alternating"
    )
    parser.add_argument("--max-workers", type=int, default=48, help="the operator's --workers")
    parser.add_argument(
        "--clients",
        type=int,
        default=CREATE_WORKERS,
        help="client threads creating the objects, in the floor and the operator's run alike",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="give up convergence after this")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.interval, args.steady_intervals, args.scale_objects = "100", 2.0, 3, 50
        args.rounds = 1
        args.out = args.out.with_name("results-quick.json")
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.scale_at is None:
        args.scale_at = [s for s in sizes if s >= 1000] or sizes
    else:
        args.scale_at = [int(s) for s in args.scale_at.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="juliarun-bench-"))
    log(f"logs in {workdir}")
    report = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}, "sizes": []}
    env = Env(workdir, args.interval, args.clients)
    try:
        report["machine"]["kube_apiserver"] = env.cluster.kubectl("version", "-o", "json")
        report["machine"]["kube_apiserver"] = json.loads(report["machine"]["kube_apiserver"])[
            "serverVersion"
        ]["gitVersion"]
        # A fresh API server answers its first requests slowly (100 objects: 2.4 s cold, 0.7 s
        # warm): whichever run came first would pay for it.
        report["warm_up_s"] = floor(env.cluster, 500, "warm-up")["seconds"]
        for n in sizes:
            report["sizes"].append(run_size(env, n, args))
            report["machine"]["loadavg_end"] = os.getloadavg()
            args.out.write_text(json.dumps(report, indent=1))  # keep what we have if a later size fails
    finally:
        env.close()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
