#!/usr/bin/env bash
# A local OCI registry for charts (docs/install.md, "Try it locally"): Debian's
# docker-registry (hack/registry/registry.sh) on a loopback address, plain http.
#
#   hack/registry/serve.sh start    start it in the background; returns once it answers
#   hack/registry/serve.sh stop     stop it and remove its directory
#
# Env: REGISTRY_ADDR (default 127.0.0.1:5000), REGISTRY_DIR (default /tmp/juliarun-registry:
#      its configuration, storage, log and pid; `stop` removes it only if `start` made it).
set -euo pipefail
cd "$(dirname "$0")/../.."
addr="${REGISTRY_ADDR:-127.0.0.1:5000}"
dir="${REGISTRY_DIR:-/tmp/juliarun-registry}"
marker="$dir/.made-by-serve.sh"

case "${1:-}" in
start)
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    echo "serve.sh: a registry already runs (pid $(cat "$dir/pid"), $dir)" >&2
    exit 1
  fi
  if [ -e "$dir" ] && [ ! -f "$marker" ]; then
    echo "serve.sh: $dir exists and is not this script's (set REGISTRY_DIR)" >&2
    exit 1
  fi
  binary="$(bash hack/registry/registry.sh)"
  mkdir -p "$dir/storage"
  touch "$marker"
  cat >"$dir/config.yml" <<CONFIG
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $dir/storage}}
http: {addr: "$addr"}
CONFIG
  setsid "$binary" serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  for _ in $(seq 50); do
    if curl -fsS "http://$addr/v2/" >/dev/null 2>&1; then
      echo "registry on $addr (oci://$addr/...; helm needs --plain-http)" >&2
      exit 0
    fi
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
    sleep 0.2
  done
  echo "serve.sh: the registry did not answer on $addr; its log:" >&2
  cat "$dir/registry.log" >&2
  exit 1
  ;;
stop)
  [ -f "$marker" ] || { echo "serve.sh: no registry of this script in $dir" >&2; exit 1; }
  if [ -f "$dir/pid" ]; then
    pid="$(cat "$dir/pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: hack/registry/serve.sh start|stop" >&2
  exit 2
  ;;
esac
