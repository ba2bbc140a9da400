"""`juliarun cluster up|down|status|load|env`: the subcommand's parser and actions."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from .binaries import bin_dir
from .control_plane import down, status, up
from .state import DevClusterError, default_state_dir, state_dir_argument


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
        left = down(args.state_dir, args.kubeconfig)
    except DevClusterError as e:
        print(f"cluster down failed: {e}", file=sys.stderr)
        return 1
    if left:
        print(f"cluster down: left {', '.join(left)} in the state dir (not made by up)", file=sys.stderr)
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


def env_lines(state_dir: Path | None) -> list[str]:
    """`export` lines for a shell: PATH with this installation's scripts (juliarun,
    kubectl-juliarun: .venv/bin after `make setup`) and the built kubectl and helm, and
    KUBECONFIG of the cluster of state_dir. tests/support/docs.py knows these two names."""
    info = status(state_dir)
    kubeconfig = info.kubeconfig if info else Path(state_dir or default_state_dir()).absolute() / "kubeconfig"
    scripts = Path(sys.executable).parent  # a venv's bin/: not resolved, which would leave the venv
    path = f"{shlex.quote(str(scripts))}:{shlex.quote(str(bin_dir()))}:$PATH"
    return [f"export PATH={path}", f"export KUBECONFIG={shlex.quote(str(kubeconfig))}"]


def _cmd_env(args: argparse.Namespace) -> int:
    for line in env_lines(args.state_dir):
        print(line)
    if not (bin_dir() / "kubectl").exists():
        print("# kubectl and helm are not built yet: `make tools`", file=sys.stderr)
    if status(args.state_dir) is None:
        print("# no cluster runs from that state dir yet: `juliarun cluster up`", file=sys.stderr)
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
    """Add `cluster up|down|status|load|env` to an argparse subparsers object."""
    cluster = subparsers.add_parser(
        "cluster", help="a local etcd + kube-apiserver (up --node adds a worker node for pods)"
    )
    actions = cluster.add_subparsers(dest="cluster_command", required=True)
    state = argparse.ArgumentParser(add_help=False)
    state.add_argument(
        "--state-dir",
        type=state_dir_argument,
        default=None,
        help=f"the cluster's directory: pids, certificates, logs, etcd data (default {default_state_dir()})",
    )
    p_up = actions.add_parser(
        "up",
        parents=[state],
        help="start the control plane, print the kubeconfig path",
        description="Start etcd and kube-apiserver on loopback ports; print the kubeconfig's path. "
        "--state-dir must be new or empty (it is marked as the cluster's); an existing one with "
        "anything else in it is refused.",
    )
    p_up.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="write the kubeconfig here, a file that must not exist yet (default: STATE_DIR/kubeconfig)",
    )
    p_up.add_argument(
        "--node",
        action="store_true",
        help="also one worker node: containerd, kubelet, kube-proxy, scheduler, "
        "controller-manager, CoreDNS (root; see docs/node.md)",
    )
    p_up.set_defaults(func=_cmd_up)
    # `down` accepts what `up` accepts, so up's command line with `down` stops what it started.
    p_down = actions.add_parser(
        "down",
        help="stop the cluster (and its node) and remove the files up made",
        description="Stop the cluster of --state-dir and its node, and remove what `up` made "
        "there (and the directory, if up created it). A directory that is not a cluster's is "
        "left untouched (exit 1); one that does not exist is nothing to do.",
    )
    p_down.add_argument(
        "--state-dir",
        type=state_dir_argument,
        default=None,
        help=f"the directory `up` used (default {default_state_dir()})",
    )
    p_down.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="the kubeconfig `up` wrote: refused if the cluster wrote another, removed otherwise",
    )
    p_down.add_argument(
        "--node", action="store_true", help="ignored: a node, if the cluster has one, is always stopped"
    )
    p_down.set_defaults(func=_cmd_down)
    p_load = actions.add_parser("load", parents=[state], help="import an image archive into the node")
    p_load.add_argument(
        "archive", type=Path, help="docker-archive or OCI archive (buildah push ... docker-archive:FILE)"
    )
    p_load.set_defaults(func=_cmd_load)
    actions.add_parser("status", parents=[state], help="exit 0 if it runs").set_defaults(func=_cmd_status)
    actions.add_parser(
        "env",
        parents=[state],
        help='print export lines for PATH and KUBECONFIG: eval "$(juliarun cluster env)"',
        description="Print the shell lines that put juliarun, kubectl-juliarun and the built kubectl "
        "and helm on PATH and point KUBECONFIG at the cluster of --state-dir.",
    ).set_defaults(func=_cmd_env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m juliarun_dev.devcluster")
    configure_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["cluster", *(argv if argv is not None else sys.argv[1:])])
    result: int = args.func(args)
    return result
