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

from ..api import GROUP, PLURAL, VERSION
from ..envvars import EnvVarError, env_float, env_int, env_list, env_str

log = logging.getLogger("juliarun_operator")
# Not 8080, the JuliaRun emulator's default port: the README starts both on one machine.
METRICS_PORT = 9180


class StartupError(EnvVarError):
    """The operator cannot start: one line (the CLI prints it) naming the flag or variable."""


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
        help=f"port of /metrics, /healthz and /readyz; 0 disables (default {METRICS_PORT}; METRICS_PORT)",
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
        "--max-calls",
        type=int,
        help="JuliaRun calls under way at once per connection, so that a slow JuliaRun holds no more "
        "workers than this (default: a sixth of --workers, at least 2; JULIARUN_MAX_CALLS)",
    )
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
    add(
        "--endpoint-range",
        action="append",
        dest="endpoint_ranges",
        metavar="CONNECTION=RANGE",
        help="where the Services of a connection's jobs may point: an address range (10.0.0.0/8) or a "
        "host-name suffix (.jobs.example.com) for CONNECTION default, Admin/<secret> (a "
        "--namespace-connection Secret) or Secret/<namespace>/<name> (a tenant's credentialsRef); "
        "CONNECTION= alone allows nothing (repeatable; default $ENDPOINT_RANGES, comma-separated; "
        "default: default=10.0.0.0/8, JuliaRun's pod network, and nothing for the others)",
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
    from ..juliarun.log_scrubbing import install_log_scrubbing
    from ..juliarun.redact import OPERATOR, register_secret
    from .adapters.kopf_storage import NoDiffBase, NoProgress
    from .adapters.kube import Kube
    from .adapters.lease import LeaseElector
    from .adapters.metrics import Metrics, bind, serve
    from .runtime.breaker import Backoff
    from .runtime.connections import Connections
    from .runtime.controller import Config, Controller
    from .runtime.poller import Housekeeper

    sync_interval = _given(args.sync_interval, env_float("JULIARUN_SYNC_INTERVAL", 10.0))
    health_interval = _given(args.health_interval, env_float("JULIARUN_HEALTH_INTERVAL", 30.0))
    resync_interval = _given(args.resync_interval, env_float("JULIARUN_RESYNC_INTERVAL", 300.0))
    landing = _given(args.submit_landing_window, env_float("JULIARUN_SUBMIT_LANDING_WINDOW", 30.0))
    metrics_port = _given(args.metrics_port, env_int("METRICS_PORT", METRICS_PORT))
    log_format = args.log_format or env_str("LOG_FORMAT") or "text"
    if log_format not in ("text", "json"):
        raise EnvVarError(f"environment variable LOG_FORMAT={log_format!r}: expected text or json")
    workers = _given(args.workers, env_int("WORKERS", 48))
    max_calls = _given(args.max_calls, env_int("JULIARUN_MAX_CALLS", max(2, workers // 6)))
    if workers < 1 or max_calls < 1:
        raise StartupError(f"--workers ({workers}) and --max-calls ({max_calls}) must be at least 1")
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
    from .runtime.published import parse_ranges

    try:
        endpoint_ranges = parse_ranges(args.endpoint_ranges or env_list("ENDPOINT_RANGES"))
    except ValueError as exc:
        raise StartupError(f"--endpoint-range / ENDPOINT_RANGES: {exc}") from None
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
    # Every record, tracebacks included and in either format, is scrubbed before it is written.
    install_log_scrubbing()
    # The connection flags `juliarun` takes before or after `operator` (as for every command).
    overrides: dict[str, Any] = {
        "url": getattr(args, "url", None),
        "token_file": getattr(args, "token_file", None),
        "namespace": getattr(args, "namespace", None),
        "verify": False if getattr(args, "insecure", False) else getattr(args, "ca_file", None),
    }
    try:
        default = Context.from_env(None, **overrides)
    except JuliaRunError as exc:  # an unreadable token file, a bad URL: the message names the flag
        raise StartupError(str(exc)) from None
    register_secret(default.token, owner=OPERATOR)  # never pushed out by tenants' registrations
    try:
        kube = Kube(kubeconfig, pool_size=workers + 8)
    except Exception as exc:
        where = f"--kubeconfig {kubeconfig}" if kubeconfig else "KUBECONFIG, in-cluster or ~/.kube/config"
        raise StartupError(f"cannot load the Kubernetes configuration ({where}): {exc}") from None
    metrics = Metrics()
    kube.on_write = metrics.kube_written
    server = None
    if metrics_port:  # bound before anything is started: a port in use stops the process here
        try:
            server = bind(metrics_port)
        except OSError as exc:
            raise StartupError(
                f"cannot listen on port {metrics_port} for /metrics and the probes: {exc.strerror} "
                "(set --metrics-port or METRICS_PORT; 0 disables)"
            ) from None
    connections = Connections(
        default,
        backoff=Backoff(),
        observe=metrics.observe_call,
        pool_size=max_calls + 2,
        max_calls=max_calls,
    )
    controller = Controller(
        Config(
            sync_interval=sync_interval,
            health_interval=health_interval,
            resync_interval=resync_interval,
            submit_landing_window=landing,
            workers=workers,
            max_calls=max_calls,
            namespaces=namespaces,
            adopt_namespaces=None if "*" in adopters else frozenset(adopters),
            check_url=check_url,
            namespace_connections=mapping,
            own_namespace=_pod_namespace(),
            endpoint_ranges=endpoint_ranges,
        ),
        kube,
        connections,
        metrics,
    )
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(name: str, target: Callable[[threading.Event], None]) -> None:
        threads.append(_thread(name, target, stop))

    housekeeper = Housekeeper(controller, start)
    connections.on_new = housekeeper.add
    elector: LeaseElector | None = None
    if not args.standalone:
        pod = env_str("POD_NAME") or socket.gethostname()
        elector = LeaseElector(
            kube.api,
            args.lease_name or env_str("LEASE_NAME") or "juliarun-operator",
            args.lease_namespace or env_str("LEASE_NAMESPACE") or _pod_namespace(),
            f"{pod}_{os.getpid()}",
            lambda acting: controller.set_acting(acting, elector.inherited if elector else None),
            lease_duration,
            pod=(_pod_namespace(), pod) if env_str("POD_NAME") else None,
        )
        # Fencing: no send unless the Lease is valid by this process's own monotonic clock.
        controller.fence = lambda: controller.acting and elector is not None and elector.valid()
        connections.fence = controller.fence
    else:
        connections.fence = lambda: controller.acting
    stopped = threading.Lock()

    def shutdown() -> None:
        """Every way out: the loops stop, then the Lease goes back (once nothing more is sent)."""
        if not stopped.acquire(blocking=False):
            return
        stop.set()
        for conn in connections.all():
            conn.wanted.set()  # the snapshot loops wait on it
        controller.queue.close()
        deadline = time.monotonic() + 5  # in all: the Lease must go back before the grace period ends
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        # After the workers: a call still under way leaves its submit unanswered, not settled.
        if elector is not None:
            elector.release(controller.handover())
        if server is not None:
            server.shutdown()
        connections.close()

    # kopf watches a resource its scan found. A CRD deleted and created again may be served
    # only after kopf's scan looked (discovery lags behind the CRD's events), and kopf does not
    # look again: the housekeeper notices the resource served again and kopf starts anew, in
    # this process, with the same handlers (their own registry) and the same runtime.
    registry = kopf.OperatorRegistry()
    rewatch = threading.Event()
    stop_kopf = [threading.Event()]
    runtime_started = threading.Event()

    def served_again() -> None:
        rewatch.set()
        stop_kopf[0].set()

    housekeeper.on_served_again = served_again

    @kopf.on.login(registry=registry)  # the default registry's login handler is not in ours
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False  # our own Events say what happened, once
        settings.persistence.diffbase_storage = NoDiffBase()  # kopf only watches: nothing to diff
        settings.persistence.progress_storage = NoProgress()  # ... and no handler progress to keep
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.batching.idle_timeout = 0.5  # per-object kopf workers: only a callback each
        if runtime_started.is_set():  # kopf started anew: the runtime goes on as it was
            return
        runtime_started.set()
        threads.extend(controller.run_workers(stop))
        start("juliarun-housekeeping", housekeeper.run)
        housekeeper.add(connections.default)
        if elector is None:
            controller.set_acting(True)
        else:
            start("juliarun-lease", elector.run)
        if server is not None:
            serve(server, metrics, housekeeper.health, housekeeper.ready)

    @kopf.on.cleanup(registry=registry)
    def cleanup(**_: Any) -> None:
        # kopf waits for a threading.Event stop flag in a thread of its own: set, it lets the
        # process end (unset, a SIGTERM would leave kopf waiting for it for ever).
        stop_kopf[0].set()
        if not rewatch.is_set():
            shutdown()

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def track(event: kopf.RawEvent, **_: Any) -> None:
        body = event.get("object")
        if body:
            controller.track(event.get("type"), body)

    log.info("JuliaRun default connection: %s", default.describe())
    try:
        while True:
            kopf.run(
                clusterwide=not namespaces,
                namespaces=namespaces,
                standalone=True,
                registry=registry,
                stop_flag=stop_kopf[0],
            )
            if not rewatch.is_set():
                break
            log.info("the JuliaRunJob resource is served again: watching it anew")
            rewatch.clear()
            stop_kopf[0] = threading.Event()
            controller.resync()  # what changed while it was not watched
    finally:
        shutdown()
    return 0


def _thread(name: str, target: Callable[[threading.Event], None], stop: threading.Event) -> threading.Thread:
    t = threading.Thread(target=target, args=(stop,), name=name, daemon=True)
    t.start()
    return t
