"""Prometheus metrics and health endpoints, on one small HTTP server.

Hand-written text exposition (a few counters, a histogram and a gauge) instead of a new
dependency. Labels hold operation names, outcomes and phases only: never a URL or token.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast

OUTCOMES = ("ok", "requeue", "parked", "retry", "error")  # juliarun_reconciles_total's; the controller's Next
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    inner = ",".join(f'{k}="{v}"'.replace("\n", " ") for k, v in pairs)
    return "{" + inner + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: dict[tuple[str, str], int] = defaultdict(int)
        self.latency_buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.latency_count: dict[str, int] = defaultdict(int)
        self.reconciles: dict[str, int] = defaultdict(int)
        self.phases: dict[str, int] = {}
        self.status_writes = 0
        self.status_write_failures = 0
        self.kube_errors: dict[tuple[str, str], int] = defaultdict(int)
        self.connections_unavailable = 0
        self.kube_writes = 0
        self.acting = 0

    def observe_call(self, operation: str, outcome: str, seconds: float) -> None:
        with self._lock:
            self.calls[(operation, outcome)] += 1
            buckets = self.latency_buckets[operation]
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    buckets[i] += 1
            self.latency_sum[operation] += seconds
            self.latency_count[operation] += 1

    def reconciled(self, outcome: str) -> None:
        """One look at an object: ok, requeue (nothing wrong; later), retry (it failed for
        this object: its backoff), error (an unexpected exception)."""
        with self._lock:
            self.reconciles[outcome] += 1

    def set_phases(self, counts: dict[str, int]) -> None:
        with self._lock:
            self.phases = dict(counts)

    def status_written(self) -> None:
        with self._lock:
            self.status_writes += 1

    def status_write_failed(self) -> None:
        with self._lock:
            self.status_write_failures += 1

    def kube_error(self, operation: str, status: object) -> None:
        with self._lock:
            self.kube_errors[(operation, str(status))] += 1

    def kube_written(self) -> None:
        with self._lock:
            self.kube_writes += 1

    def set_acting(self, acting: bool) -> None:
        with self._lock:
            self.acting = int(acting)

    def set_unavailable(self, count: int) -> None:
        with self._lock:
            self.connections_unavailable = count

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP juliarun_calls_total JuliaRun API calls by operation and outcome.",
                "# TYPE juliarun_calls_total counter",
            ]
            for (op, outcome), n in sorted(self.calls.items()):
                lines.append(f"juliarun_calls_total{_labels((('operation', op), ('outcome', outcome)))} {n}")
            lines += [
                "# HELP juliarun_call_duration_seconds JuliaRun API call latency.",
                "# TYPE juliarun_call_duration_seconds histogram",
            ]
            for op in sorted(self.latency_count):
                for bound, n in zip(BUCKETS, self.latency_buckets[op], strict=True):
                    labels = _labels((("operation", op), ("le", f"{bound:g}")))
                    lines.append(f"juliarun_call_duration_seconds_bucket{labels} {n}")
                inf = _labels((("operation", op), ("le", "+Inf")))
                lines.append(f"juliarun_call_duration_seconds_bucket{inf} {self.latency_count[op]}")
                lines.append(
                    f"juliarun_call_duration_seconds_sum{_labels((('operation', op),))} "
                    f"{self.latency_sum[op]:.6f}"
                )
                lines.append(
                    f"juliarun_call_duration_seconds_count{_labels((('operation', op),))} "
                    f"{self.latency_count[op]}"
                )
            lines += [
                "# HELP juliarun_reconciles_total Looks at an object by outcome: ok, requeue, retry, error.",
                "# TYPE juliarun_reconciles_total counter",
            ]
            for outcome in OUTCOMES:  # each present from the start: a rule can rate it
                labels = _labels((("outcome", outcome),))
                lines.append(f"juliarun_reconciles_total{labels} {self.reconciles[outcome]}")
            lines += ["# HELP juliarun_jobs JuliaRunJob objects by phase.", "# TYPE juliarun_jobs gauge"]
            for phase, n in sorted(self.phases.items()):
                lines.append(f"juliarun_jobs{_labels((('phase', phase),))} {n}")
            lines += [
                "# HELP juliarun_status_writes_total Status patches written.",
                "# TYPE juliarun_status_writes_total counter",
                f"juliarun_status_writes_total {self.status_writes}",
                "# HELP juliarun_status_write_failures_total Status patches the API server refused or lost.",
                "# TYPE juliarun_status_write_failures_total counter",
                f"juliarun_status_write_failures_total {self.status_write_failures}",
                "# HELP juliarun_kube_errors_total Kubernetes API errors by operation and HTTP status.",
                "# TYPE juliarun_kube_errors_total counter",
            ]
            for (op, code), n in sorted(self.kube_errors.items()):
                lines.append(f"juliarun_kube_errors_total{_labels((('operation', op), ('code', code)))} {n}")
            lines += [
                "# HELP juliarun_kube_writes_total Writes to the Kubernetes API: status, finalizers, Events, "
                "the Services, EndpointSlices and Secrets of jobs.",
                "# TYPE juliarun_kube_writes_total counter",
                f"juliarun_kube_writes_total {self.kube_writes}",
            ]
            lines += [
                "# HELP juliarun_acting 1 while this replica holds the Lease and acts, else 0.",
                "# TYPE juliarun_acting gauge",
                f"juliarun_acting {self.acting}",
            ]
            lines += [
                "# HELP juliarun_connections_unavailable JuliaRun connections in use that fail now.",
                "# TYPE juliarun_connections_unavailable gauge",
                f"juliarun_connections_unavailable {self.connections_unavailable}",
            ]
            return "\n".join(lines) + "\n"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    handler: Callable[[BaseHTTPRequestHandler], None] = staticmethod(lambda request: None)


def bind(port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:  # noqa: S104 (probes and Prometheus reach the pod)
    """The metrics server's socket, bound now: a port in use fails here, at start-up (OSError)."""

    class Handler(BaseHTTPRequestHandler):
        timeout = 5  # seconds a connection may sit idle: idle sockets cannot pile up threads

        def do_GET(self) -> None:
            server.handler(self)

        def log_message(self, *args: object) -> None:
            pass  # probes every few seconds would drown the operator's log

    server = _Server((host, port), Handler)
    return server


def serve(
    server: ThreadingHTTPServer,
    metrics: Metrics,
    health: Callable[[], tuple[bool, str]],
    ready: Callable[[], tuple[bool, str]],
) -> None:
    """Serve /metrics, /healthz (the operator works) and /readyz (JuliaRun answers) on a bound server."""

    def handle(request: BaseHTTPRequestHandler) -> None:
        if request.path == "/metrics":
            code, body, ctype = 200, metrics.render(), "text/plain; version=0.0.4"
        elif request.path in ("/healthz", "/readyz"):
            ok, text = (health if request.path == "/healthz" else ready)()
            code, body, ctype = (200 if ok else 503), text + "\n", "text/plain"
        else:
            code, body, ctype = 404, "not found\n", "text/plain"
        payload = body.encode()
        request.send_response(code)
        request.send_header("Content-Type", ctype)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    cast(_Server, server).handler = handle
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
