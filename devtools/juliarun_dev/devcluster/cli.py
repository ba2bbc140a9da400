"""`juliarun cluster up|down|status|load`: the subcommand's parser and actions."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from .control_plane import down, status, up
from .state import DevClusterError, default_state_dir


def _cmd_up(args: argparse.Namespace) -> int:
    start = time.monotonic()
    try:
        info = up(args.kubeconfig, args.state_dir, args.node)
    except DevClusterError as e:
        print(f"cluster up failed: {e}", file=sys.stderr)
        return 1
    print(f"cluster ready at {info.server} ({time.monotonic() - start:.1f}s)", file=sys.stderr)
    print(f"  export KUBECONFIG={info.kubeconfig}", file=sys.stderr)
    print(f"  kubectl: {info.kubectl}", file=sys.stderr)
    print(info.kubeconfig)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    try:
        down(args.state_dir, args.kubeconfig)
    except DevClusterError as e:
        print(f"cluster down failed: {e}", file=sys.stderr)
        return 1
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    info = status(args.state_dir)
    if info is None:
        print("not running")
        return 1
    print(
        f"running: server {info.server}, kubeconfig {info.kubeconfig}, "
        f"pids etcd {info.etcd_pid} kube-apiserver {info.apiserver_pid}"
    )
    if info.node:
        from .. import devnode

        print(devnode.status_line(info.state_dir))
    return 0


def _cmd_load(args: argparse.Namespace) -> int:
    from .. import devnode

    try:
        devnode.load_image(Path(args.state_dir or default_state_dir()), args.archive)
    except DevClusterError as e:
        print(f"cluster load failed: {e}", file=sys.stderr)
        return 1
    return 0


def configure_parser(subparsers: Any) -> None:
    """Add `cluster up|down|status` to an argparse subparsers object."""
    cluster = subparsers.add_parser(
        "cluster", help="a local etcd + kube-apiserver (up --node adds a worker node for pods)"
    )
    actions = cluster.add_subparsers(dest="cluster_command", required=True)
    state = argparse.ArgumentParser(add_help=False)
    state.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help=f"where pids, certificates, logs and etcd data live (default {default_state_dir()})",
    )
    # `down` takes what `up` takes, so the same command line with `down` stops what `up` started.
    up_options = argparse.ArgumentParser(add_help=False, parents=[state])
    up_options.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="write the kubeconfig here (default: STATE_DIR/kubeconfig; removed by down)",
    )
    up_options.add_argument(
        "--node",
        action="store_true",
        help="also one worker node: containerd, kubelet, kube-proxy, scheduler, "
        "controller-manager, CoreDNS (root; see docs/node.md)",
    )
    actions.add_parser(
        "up", parents=[up_options], help="start the control plane, print the kubeconfig path"
    ).set_defaults(func=_cmd_up)
    actions.add_parser(
        "down", parents=[up_options], help="stop it (and its node) and remove its files"
    ).set_defaults(func=_cmd_down)
    p_load = actions.add_parser("load", parents=[state], help="import an image archive into the node")
    p_load.add_argument(
        "archive", type=Path, help="docker-archive or OCI archive (buildah push ... docker-archive:FILE)"
    )
    p_load.set_defaults(func=_cmd_load)
    actions.add_parser("status", parents=[state], help="exit 0 if it runs").set_defaults(func=_cmd_status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m juliarun_dev.devcluster")
    configure_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["cluster", *(argv if argv is not None else sys.argv[1:])])
    result: int = args.func(args)
    return result
