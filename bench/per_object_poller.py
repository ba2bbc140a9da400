"""The usual alternative to a batch sync: a timer per object that polls JuliaRun for it.

For every JuliaRunJob in a namespace (already submitted: status.jobName set), each interval
makes the three calls a per-object timer would (getJobStatus, getJobScale, getJobEndpoint),
turns the answers into the same status the operator would write (the operator's own pure
`view_of`), and patches the status subresource only when it changed. A thread pool does the
calls, as kopf's timers would run in its executor. Prints one JSON line of results.

    python bench/per_object_poller.py --namespace NS --interval 5 --intervals 5 --workers 16
    (JULIARUN_URL, JULIARUN_TOKEN, JULIARUN_NAMESPACE and KUBECONFIG from the environment)
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import kubernetes
from run import status_for

from juliarun_operator.juliarun import Client, Context, Job, JobInfo, RetryPolicy

GROUP, VERSION, PLURAL = "juliarun.dev", "v1alpha1", "juliarunjobs"


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--intervals", type=int, default=5)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()

    kubernetes.config.load_kube_config()
    config = kubernetes.client.Configuration.get_default_copy()
    config.connection_pool_maxsize = args.workers + 4
    custom = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(config))
    context = Context.from_env()
    local = threading.local()  # one client (one keep-alive connection) per worker thread

    def client() -> Client:
        if not hasattr(local, "client"):
            local.client = Client(context, retry=RetryPolicy(attempts=1))
        return local.client

    items = custom.list_namespaced_custom_object(GROUP, VERSION, args.namespace, PLURAL)["items"]
    objects = {o["metadata"]["name"]: o for o in items if (o.get("status") or {}).get("jobName")}
    lock = threading.Lock()
    counts = {"calls": 0, "writes": 0, "errors": 0}

    def poll(name: str) -> None:
        body = objects[name]
        job = Job(body["spec"]["type"], body["status"]["jobName"])
        c = client()
        try:
            info = JobInfo(
                job.name, job.type, c.get_job_status(job), c.get_job_scale(job), c.get_job_endpoint(job)
            )
        except Exception:
            with lock:
                counts["errors"] += 1
            return
        fields = status_for(body, info)
        wrote = 0
        if fields:
            objects[name] = custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, args.namespace, PLURAL, name, {"status": fields}
            )
            wrote = 1
        with lock:
            counts["calls"] += 3
            counts["writes"] += wrote

    pool = ThreadPoolExecutor(args.workers)
    per_interval = []
    cpu0 = cpu_seconds()
    for _ in range(args.intervals):
        started = time.monotonic()
        before = dict(counts)
        list(pool.map(poll, list(objects)))
        took = time.monotonic() - started
        per_interval.append(
            {
                "seconds": round(took, 2),
                "calls": counts["calls"] - before["calls"],
                "writes": counts["writes"] - before["writes"],
            }
        )
        # A timer fires every interval; a round that overruns starts the next at once.
        time.sleep(max(0.0, args.interval - took))
    print(
        json.dumps(
            {
                "objects": len(objects),
                "intervals": per_interval,
                "errors": counts["errors"],
                "cpu_seconds": round(cpu_seconds() - cpu0, 2),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
