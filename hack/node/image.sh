#!/usr/bin/env bash
# Build the operator image from the project's Dockerfile without Docker (buildah), on a
# Debian bookworm base made here with mmdebstrap (its python3 is 3.11, as python:3.11-slim's),
# and write it as an archive that `juliarun cluster load` imports into the local node.
#
#   hack/node/image.sh [TAG]     default tag: the chart's appVersion; prints the archive path
#
# Env: IMAGE (default juliarun-operator), JULIARUN_IMAGE_CACHE (default
#      ${XDG_CACHE_HOME:-$HOME/.cache}/juliarun-operator/images)
# Cached: the base image (buildah's storage, by the name below) and every Dockerfile layer
# (--layers) and pip's downloads (the Dockerfile's cache mount); a rebuild after a source
# change reruns only `pip install .`.
set -euo pipefail
cd "$(dirname "$0")/../.."
image="${IMAGE:-juliarun-operator}"
tag="${1:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/juliarun-operator/Chart.yaml)}"
out="${JULIARUN_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/juliarun-operator/images}"
base="localhost/juliarun-base:bookworm-python3.11"
log() { echo "[image] $*" >&2; }
# Run "$@" showing its progress on stderr: its step lines ("[1/2] STEP 3/7", mmdebstrap's "I: ..."),
# and every 30 s a line that it still runs (a cold base or `pip install` takes minutes).
# Its whole output is kept in $out/$1.log, and the end of it shown if it fails.
progress() {
  local name=$1 t0 beat rc=0
  shift
  t0=$(date +%s)
  (while sleep 30; do log "$name: still running ($(($(date +%s) - t0))s)"; done) &
  beat=$!
  "$@" 2>&1 | tee "$out/$name.log" | awk '/STEP [0-9]|^COMMIT|^I: / { print "[image] " $0; fflush() }' >&2 || rc=$?
  kill "$beat" 2>/dev/null || true
  wait "$beat" 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then
    log "$name failed ($rc); the end of $out/$name.log:"
    tail -n 30 "$out/$name.log" >&2
  fi
  return "$rc"
}
for tool in buildah mmdebstrap; do
  command -v "$tool" >/dev/null || { echo "image.sh: $tool not found (hack/node/install-deps.sh)" >&2; exit 1; }
done
mkdir -p "$out"

if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  start=$(date +%s)
  log "making $base with mmdebstrap ..."
  rootfs="$(mktemp -d)"; trap 'rm -rf "$rootfs"' EXIT
  # minbase + python3 (3.11 in bookworm) and its venv module; no docs, man pages or locales.
  progress base mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm "$rootfs/base.tar"
  ctr="$(buildah from scratch)"
  buildah add --quiet "$ctr" "$rootfs/base.tar" / >/dev/null
  buildah config --cmd '["python3"]' "$ctr"
  buildah commit --quiet --rm "$ctr" "$base" >/dev/null
  log "made $base in $(( $(date +%s) - start ))s"
fi

start=$(date +%s)
mounts=()
# A machine whose pip needs its own settings (an index mirror, a TLS-intercepting proxy's CA)
# lends them to the build's RUN steps only; nothing of them lands in the image.
if [ -f /etc/pip.conf ]; then
  mounts+=(-v /etc/pip.conf:/etc/pip.conf:ro)
  ca="$(sed -n 's/^cert *= *//p' /etc/pip.conf | head -1)"
  [ -n "$ca" ] && [ -f "$ca" ] && mounts+=(-v "$ca:$ca:ro")
fi
# chroot isolation: RUN steps need no OCI runtime or cgroup setup; host network: no CNI.
log "building $image:$tag from the Dockerfile (a cold pip install takes minutes) ..."
progress build buildah build --isolation chroot --network host --layers "${mounts[@]}" \
  --build-arg BASE="$base" -t "localhost/$image:$tag" .
archive="$out/$image-$tag.tar"
rm -f "$archive"
# Named as the chart names it (docker.io/library/$image:$tag once containerd normalizes it).
buildah push --quiet "localhost/$image:$tag" "docker-archive:$archive:$image:$tag"
log "built $image:$tag in $(( $(date +%s) - start ))s: $archive"
echo "$archive"
