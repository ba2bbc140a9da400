#!/usr/bin/env bash
# One JuliaRun job through its life, with the `juliarun` command line against the
# project's JuliaRun server (the emulator) on a free loopback port.
#
#   make setup && bash hack/demo-jobs.sh
#
# Every command is echoed before it runs. The server is stopped on exit, however the
# script ends.
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=.venv/bin
JOB=demo-sim
SCALE=3

if [[ ! -x $BIN/juliarun ]]; then
  echo "demo-jobs: $BIN/juliarun not found; run 'make setup' first" >&2
  exit 1
fi

# A port the kernel just handed out and released: free unless something races us for it.
PORT=$($BIN/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export JULIARUN_URL="http://127.0.0.1:$PORT"
export JULIARUN_TOKEN=demo-token
export JULIARUN_NAMESPACE=demo
unset JULIARUN_TOKEN_FILE

LOG=$(mktemp -t juliarun-emulator.XXXXXX)
$BIN/juliarun emulator --port "$PORT" --create-delay 1 --worker-delay 0.5 --run-time 0 >"$LOG" 2>&1 &
SERVER=$!
cleanup() {
  kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
  rm -f "$LOG"
}
trap cleanup EXIT

# Echo a command as one could paste it (quoting only what needs it), then run it.
run() {
  local shown=juliarun arg
  for arg in "$@"; do
    if [[ $arg =~ ^[A-Za-z0-9_./:=@-]+$ ]]; then shown+=" $arg"; else shown+=" '$arg'"; fi
  done
  echo
  echo "\$ $shown"
  $BIN/juliarun "$@"
}

# Running workers, from the table's second line: NAME RUNNING REQUESTED.
running() {
  $BIN/juliarun scale "$JOB" | awk 'NR == 2 { print $2 }'
}

echo "JuliaRun server on $JULIARUN_URL (namespace $JULIARUN_NAMESPACE, token from JULIARUN_TOKEN)"
for _ in $(seq 50); do
  $BIN/juliarun system >/dev/null 2>&1 && break
  if ! kill -0 "$SERVER" 2>/dev/null; then
    echo "demo-jobs: the JuliaRun server exited:" >&2
    cat "$LOG" >&2
    exit 1
  fi
  sleep 0.2
done

run system
run submit JuliaParBatch "$JOB" run_volume=jobs start_script=sim.jl nworkers=1 \
  cpu=0.5 worker_cpu=1 'additional_volumes=[data, scratch]' 'ports={http: [8080, 80]}'
run status "$JOB"

echo
echo "(waiting for JuliaRun to create the job)"
sleep 1.5
run status "$JOB"

run scale "$JOB" "$SCALE"
echo
echo "(watching the scale reach $SCALE)"
last=
for _ in $(seq 40); do
  now=$(running)
  [[ $now != "$last" ]] && echo "  running: $now of $SCALE"  # print changes only
  last=$now
  [[ $now == "$SCALE" ]] && break
  sleep 0.25
done
run scale "$JOB"

run endpoint "$JOB"
run logs "$JOB" --count 10
run jobs --all
run delete "$JOB" --force
run jobs
