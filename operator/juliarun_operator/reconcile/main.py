"""`juliarun operator`: configuration from flags and environment, then kopf."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from ..juliarun import Context, JuliaRunError
from .connections import Backoff
from .kube import Kube
from .metrics import Metrics, serve
from .runtime import Config, Runtime

ENV = os.environ


def _env_list(name: str) -> list[str]:
    return [n.strip() for n in ENV.get(name, "").split(",") if n.strip()]


def configure_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "operator", help="run the JuliaRunJob operator",
        description="Run the operator: watch JuliaRunJob objects and keep JuliaRun in step. "
                    "Kubernetes is found as kubectl finds it (KUBECONFIG, or in-cluster); "
                    "the default JuliaRun connection as the juliarun CLI finds it.")
    p.add_argument("--kubeconfig", default=ENV.get("KUBECONFIG"), help="kubeconfig file (default: $KUBECONFIG, then in-cluster)")
    p.add_argument("--watch-namespace", action="append", dest="watch_namespaces",
                   default=_env_list("WATCH_NAMESPACES"),
                   help="namespace to watch (repeatable; default $WATCH_NAMESPACES, comma-separated, else all)")
    p.add_argument("--sync-interval", type=float, default=float(ENV.get("JULIARUN_SYNC_INTERVAL", "10")),
                   help="seconds between status syncs (one getAllJobInfo per connection each) (default 10)")
    p.add_argument("--health-interval", type=float,
                   default=float(ENV.get("JULIARUN_HEALTH_INTERVAL", "30")),
                   help="seconds between getSystemStatus checks per connection (default 30)")
    p.add_argument("--submit-landing-window", type=float,
                   default=float(ENV.get("JULIARUN_SUBMIT_LANDING_WINDOW", "30")),
                   help="seconds, beyond the time-outs, that an unconfirmed submitJob may still "
                        "take to land before a retry or a deletion decides it did not (default 30)")
    p.add_argument("--metrics-port", type=int, default=int(ENV.get("METRICS_PORT", "8080")),
                   help="port of /metrics, /healthz and /readyz; 0 disables (default 8080)")
    p.add_argument("--log-format", choices=("text", "json"), default=ENV.get("LOG_FORMAT", "text"))
    p.add_argument("--verbose", action="store_true", help="debug logging")
    p.add_argument("--peering", default=ENV.get("PEERING_NAME", "juliarun-operator"),
                   help="kopf peering name: replicas with the same name elect one to act")
    p.add_argument("--priority", type=int, default=int(ENV.get("PEERING_PRIORITY", "0")),
                   help="peering priority: the highest acts; give replicas distinct values")
    p.add_argument("--peering-lifetime", type=int, default=int(ENV.get("PEERING_LIFETIME", "60")),
                   help="seconds after which a silent peer counts as dead and another takes over")
    p.add_argument("--standalone", action="store_true", help="no peering (a single operator)")
    p.add_argument("--max-workers", type=int, default=int(ENV.get("MAX_WORKERS", "32")),
                   help="threads for handlers (kopf's default is CPUs + 4)")
    p.add_argument("--max-in-flight", type=int, default=int(ENV.get("MAX_IN_FLIGHT", "500")),
                   help="objects worked on at once; the others' events wait, which bounds memory "
                        "when thousands change together; 0: no limit (default 500)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import kopf

    from . import handlers  # noqa: F401  (registers the handlers with kopf)
    from .syncer import Syncer

    kopf.configure(verbose=args.verbose, log_format=(
        kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL))
    try:
        context = Context.from_env(url=getattr(args, "url", None),
                                   token_file=getattr(args, "token_file", None),
                                   namespace=getattr(args, "namespace", None))
    except JuliaRunError as exc:
        logging.getLogger("juliarun_operator").error("%s", exc)
        return 1
    # kopf logs every run of the watch-event handler; at thousands of objects that is noise.
    logging.getLogger("kopf.objects").addFilter(
        lambda record: not record.getMessage().startswith("Handler 'track'"))
    metrics = Metrics()
    runtime = Runtime(Config(context, sync_interval=args.sync_interval,
                             health_interval=args.health_interval,
                             submit_landing_window=args.submit_landing_window, backoff=Backoff()),
                      Kube(args.kubeconfig, pool_size=args.max_workers + 8), metrics)
    syncer = Syncer(runtime)
    servers = []

    def start() -> None:
        syncer.start()
        if args.metrics_port:
            servers.append(serve(metrics, args.metrics_port, syncer.health, syncer.ready))

    def stop() -> None:
        syncer.close()
        for server in servers:
            server.shutdown()

    memo = kopf.Memo(runtime=runtime, max_workers=args.max_workers, max_in_flight=args.max_in_flight,
                     peering_lifetime=args.peering_lifetime,
                     start=start, stop=stop)
    logging.getLogger("juliarun_operator").info("JuliaRun default connection: %s", context.describe())
    # Naming a peering makes kopf insist on it (and wait for its CRD): only when peering.
    peering = {} if args.standalone else {"peering_name": args.peering, "priority": args.priority}
    kopf.run(clusterwide=not args.watch_namespaces, namespaces=args.watch_namespaces,
             standalone=args.standalone, memo=memo, **peering)
    return 0
