#!/usr/bin/env bash
# Build the kstatus CLI (this directory's Go module) through the Go module proxy
# into a cache outside the repository, keyed by the hash of go.mod/go.sum/main.go
# so an edit rebuilds and an unchanged tree reuses the binary.
#
#   hack/kstatus/build.sh        # prints the path of the binary
#
# Env: JULIARUN_KSTATUS_CACHE  cache dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/juliarun-operator/kstatus)
#      GO                      go binary (default: go on PATH, else /usr/local/go/bin/go)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
[ -x "$GO" ] || { echo "kstatus/build.sh: no Go toolchain (set GO=/path/to/go)" >&2; exit 1; }

key="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" | sha256sum | cut -c1-16)"
cache="${JULIARUN_KSTATUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/juliarun-operator/kstatus}"
out="$cache/kstatus-$key"

if [ ! -x "$out" ]; then
  mkdir -p "$cache"
  echo "[kstatus] building $out ..." >&2
  # -mod=readonly: go.sum is committed, a build must not rewrite it.
  (cd "$here" && CGO_ENABLED=0 "$GO" build -mod=readonly -trimpath -ldflags "-s -w" -o "$out.tmp" .)
  mv "$out.tmp" "$out"
fi
echo "$out"
