"""`juliarun operator`: configuration from flags and environment, then kopf for the watch.

kopf does what it does best here: it watches JuliaRunJobs (reconnecting, per namespace) and
hands every event to `Controller.track`. It writes nothing to the objects: no progress or
diff-base annotations and no finalizer of its own (the controller keeps ours). Importing
this module stays cheap: kopf and the kubernetes client load in `run`.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ..envvars import EnvVarError, env_float, env_int, env_list, env_str

log = logging.getLogger("juliarun_operator")


def configure_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "operator",
        help="run the JuliaRunJob operator",
        description="Run the operator: watch JuliaRunJob objects and keep JuliaRun in step. "
        "Kubernetes is found as kubectl finds it (--kubeconfig, KUBECONFIG, in-cluster); "
        "the default JuliaRun connection as the juliarun CLI finds it.",
    )
    add = p.add_argument
    add("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then in-cluster, then ~/.kube/config)")
    add(
        "--watch-namespace",
        action="append",
        dest="watch_namespaces",
        help="namespace to watch (repeatable; default $WATCH_NAMESPACES, comma-separated, else all)",
    )
    add(
        "--sync-interval",
        type=float,
        help="seconds between snapshots (one getAllJobInfo per connection "
        "each) when nothing waits for JuliaRun (default 10; JULIARUN_SYNC_INTERVAL)",
    )
    add(
        "--health-interval",
        type=float,
        help="seconds between getSystemStatus checks per connection (default 30; JULIARUN_HEALTH_INTERVAL)",
    )
    add(
        "--resync-interval",
        type=float,
        help="seconds between full passes over every object, with a fresh "
        "list (default 300; JULIARUN_RESYNC_INTERVAL)",
    )
    add(
        "--submit-landing-window",
        type=float,
        help="seconds, beyond the time-outs, that an unconfirmed submitJob may still take to land before "
        "a retry or a deletion decides it did not (default 30; JULIARUN_SUBMIT_LANDING_WINDOW)",
    )
    add(
        "--metrics-port",
        type=int,
        help="port of /metrics, /healthz and /readyz; 0 disables (default 8080; METRICS_PORT)",
    )
    add("--log-format", choices=("text", "json"), help="default text; LOG_FORMAT")
    add("--verbose", action="store_true", help="debug logging")
    add("--standalone", action="store_true", help="act at once, without the Lease (a single operator only)")
    add(
        "--lease-name",
        help="the Lease that elects the acting replica (default juliarun-operator; LEASE_NAME)",
    )
    add("--lease-namespace", help="its namespace (default: the pod's, else default; LEASE_NAMESPACE)")
    add(
        "--lease-duration",
        type=int,
        help="seconds after which a silent replica's Lease is taken over (default 15; LEASE_DURATION)",
    )
    add("--workers", type=int, help="objects handled at once (threads; default 48; WORKERS)")
    add(
        "--namespace-connection",
        action="append",
        dest="namespace_connections",
        metavar="NAMESPACE=SECRET",
        help="the namespace's JuliaRun connection: a Secret (url, token, namespace, ca.crt) in the "
        "operator's own namespace; other namespaces use the default connection (repeatable; "
        "default $NAMESPACE_CONNECTIONS, comma-separated)",
    )
    add(
        "--adopt-namespace",
        action="append",
        dest="adopt_namespaces",
        help="namespace whose objects may adopt existing JuliaRun jobs and name jobs outside their "
        "own prefix <namespace>- (repeatable; default $ADOPT_NAMESPACES, comma-separated; "
        "'*' for all; default none)",
    )
    p.set_defaults(func=run)


def _pod_namespace() -> str:
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"


def _given(value: Any, default: Any) -> Any:
    return default if value is None else value


def run(args: argparse.Namespace) -> int:
    import kopf

    from .. import tenancy
    from ..juliarun import Context, JuliaRunError
    from .adapters.kopf_storage import NoDiffBase, NoProgress
    from .adapters.kube import Kube
    from .adapters.lease import LeaseElector
    from .adapters.metrics import Metrics, serve
    from .runtime.connections import Backoff, Connections
    from .runtime.controller import Config, Controller
    from .runtime.poller import Poller

    sync_interval = _given(args.sync_interval, env_float("JULIARUN_SYNC_INTERVAL", 10.0))
    health_interval = _given(args.health_interval, env_float("JULIARUN_HEALTH_INTERVAL", 30.0))
    resync_interval = _given(args.resync_interval, env_float("JULIARUN_RESYNC_INTERVAL", 300.0))
    landing = _given(args.submit_landing_window, env_float("JULIARUN_SUBMIT_LANDING_WINDOW", 30.0))
    metrics_port = _given(args.metrics_port, env_int("METRICS_PORT", 8080))
    log_format = args.log_format or env_str("LOG_FORMAT") or "text"
    if log_format not in ("text", "json"):
        raise EnvVarError(f"environment variable LOG_FORMAT={log_format!r}: expected text or json")
    workers = _given(args.workers, env_int("WORKERS", 48))
    lease_duration = _given(args.lease_duration, env_int("LEASE_DURATION", 15))
    namespaces = args.watch_namespaces or env_list("WATCH_NAMESPACES")
    adopters = args.adopt_namespaces or env_list("ADOPT_NAMESPACES")
    mapping = {}
    for entry in args.namespace_connections or env_list("NAMESPACE_CONNECTIONS"):
        namespace, sep, secret = entry.partition("=")
        if not (sep and namespace.strip() and secret.strip()):
            raise EnvVarError(f"namespace connection {entry!r}: expected NAMESPACE=SECRET")
        mapping[namespace.strip()] = secret.strip()
    kubeconfig = args.kubeconfig or env_str("KUBECONFIG")
    try:
        allowed_hosts = tenancy.allowed_hosts_from_env()
    except ValueError as exc:
        raise EnvVarError(str(exc)) from None
    insecure = tenancy.insecure_http_allowed()

    def check_url(url: str) -> str:
        """Why a tenant's credentials Secret may not send the operator to `url` ("" if it may)."""
        try:
            tenancy.check_tenant_url(url, allowed_hosts, allow_insecure_http=insecure, key="url")
        except tenancy.TenantURLError as exc:
            return str(exc)
        return ""

    if kubeconfig:
        os.environ["KUBECONFIG"] = kubeconfig  # kopf finds the cluster the same way as our own client

    kopf.configure(
        verbose=args.verbose, log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL
    )
    if not args.verbose:  # kopf logs each watch event's handler at INFO: a line per event, no news
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # The connection flags `juliarun` takes before or after `operator` (as for every command).
    overrides: dict[str, Any] = {
        "url": getattr(args, "url", None),
        "token_file": getattr(args, "token_file", None),
        "namespace": getattr(args, "namespace", None),
        "verify": False if getattr(args, "insecure", False) else getattr(args, "ca_file", None),
    }
    try:
        default = Context.from_env(None, **overrides)
    except JuliaRunError as exc:
        log.error("%s", exc)
        return 1
    metrics = Metrics()
    connections = Connections(default, backoff=Backoff(), observe=metrics.observe_call, pool_size=workers + 2)
    kube = Kube(kubeconfig, pool_size=workers + 8, on_write=metrics.kube_written)
    controller = Controller(
        Config(
            sync_interval=sync_interval,
            health_interval=health_interval,
            resync_interval=resync_interval,
            submit_landing_window=landing,
            workers=workers,
            namespaces=namespaces,
            adopt_namespaces=None if "*" in adopters else frozenset(adopters),
            check_url=check_url,
            namespace_connections=mapping,
            own_namespace=_pod_namespace(),
        ),
        kube,
        connections,
        metrics,
    )
    poller = Poller(controller)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    servers = []
    electors: list[LeaseElector] = []

    @kopf.on.startup()
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False  # our own Events say what happened, once
        settings.persistence.diffbase_storage = NoDiffBase()  # kopf only watches: nothing to diff
        settings.persistence.progress_storage = NoProgress()  # ... and no handler progress to keep
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.batching.idle_timeout = 0.5  # per-object kopf workers: only a callback each
        threads.extend(controller.run_workers(stop))
        threads.append(_thread("juliarun-poller", poller.run, stop))
        if args.standalone:
            controller.set_acting(True)
        else:
            pod = env_str("POD_NAME") or socket.gethostname()
            identity = f"{pod}_{os.getpid()}"
            elector = LeaseElector(
                kube.api,
                args.lease_name or env_str("LEASE_NAME") or "juliarun-operator",
                args.lease_namespace or env_str("LEASE_NAMESPACE") or _pod_namespace(),
                identity,
                lambda acting: controller.set_acting(acting, elector.inherited),
                lease_duration,
                pod=(_pod_namespace(), pod) if env_str("POD_NAME") else None,
            )
            electors.append(elector)
            threads.append(_thread("juliarun-lease", elector.run, stop))
        if metrics_port:
            servers.append(serve(metrics, metrics_port, poller.health, poller.ready))

    @kopf.on.cleanup()
    def cleanup(**_: Any) -> None:
        stop.set()
        connections.wanted.set()  # the poller waits on it
        controller.queue.close()
        deadline = time.monotonic() + 5  # in all: the Lease must go back before the grace period ends
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        # After the workers: a call still under way leaves its submit unanswered, not settled.
        for elector in electors:
            elector.release(controller.handover())
        for server in servers:
            server.shutdown()

    @kopf.on.event("juliarun.dev", "v1alpha1", "juliarunjobs")
    async def track(event: kopf.RawEvent, **_: Any) -> None:
        body = event.get("object")
        if body:
            controller.track(event.get("type"), body)

    log.info("JuliaRun default connection: %s", default.describe())
    kopf.run(clusterwide=not namespaces, namespaces=namespaces, standalone=True)
    return 0


def _thread(name: str, target: Callable[[threading.Event], None], stop: threading.Event) -> threading.Thread:
    t = threading.Thread(target=target, args=(stop,), name=name, daemon=True)
    t.start()
    return t
