#!/usr/bin/env bash
# Build promtool (Prometheus's rule checker) through the Go module proxy into a
# per-version cache outside the repository; print the binary's path.
#
#   hack/promtool/build.sh
#
# The version is PROMETHEUS_VERSION in hack/controlplane/versions.env. Prometheus
# publishes its Go module as v0.<major*100+minor>.<patch> (v3.16.0 -> v0.316.0).
# remove_all_sd leaves out the service-discovery plugins promtool does not need for
# rules (the cloud SDKs): a smaller, faster build.
#
# Env: JULIARUN_CP_CACHE  cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/juliarun-operator/bin)
#      GO                 go binary (default: go on PATH, else /usr/local/go/bin/go)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../controlplane/versions.env
source "$here/../controlplane/versions.env"

GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
[ -x "$GO" ] || { echo "promtool/build.sh: no Go toolchain (set GO=/path/to/go)" >&2; exit 1; }

version="${PROMETHEUS_VERSION#v}"
IFS=. read -r major minor patch <<<"$version"
module_version="v0.$((major * 100 + minor)).$patch"

cache_root="${JULIARUN_CP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/juliarun-operator/bin}"
bin="$cache_root/promtool-$PROMETHEUS_VERSION"

if [ ! -x "$bin/promtool" ]; then
  mkdir -p "$bin"
  echo "[promtool] building promtool $PROMETHEUS_VERSION ($module_version) into $bin ..." >&2
  start=$(date +%s)
  ldflags="-s -w -X github.com/prometheus/common/version.Version=${version}"
  GOBIN="$bin.tmp" CGO_ENABLED=0 GOFLAGS=-mod=mod "$GO" install -trimpath -tags remove_all_sd \
    -ldflags "$ldflags" "github.com/prometheus/prometheus/cmd/promtool@$module_version"
  mv "$bin.tmp/promtool" "$bin/promtool"
  rmdir "$bin.tmp"
  echo "[promtool] built in $(( $(date +%s) - start ))s" >&2
fi
echo "$bin/promtool"
