#!/usr/bin/env bash
# The OCI registry the chart tests push to and install from (`helm push`, `helm install
# oci://...`): Debian's docker-registry package (CNCF Distribution), its binary only. The
# package is downloaded and unpacked, not installed: installing it would start a system
# service listening on every interface. Prints the binary's path.
#
#   hack/registry/registry.sh
#
# Env: JULIARUN_CP_CACHE  cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/juliarun-operator/bin)
set -euo pipefail
cache_root="${JULIARUN_CP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/juliarun-operator/bin}"
version="$(apt-cache policy docker-registry 2>/dev/null | sed -n 's/^ *Candidate: *//p')"
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  # apt's package lists may not be there yet on a fresh machine.
  [ "$(id -u)" -eq 0 ] && apt-get update -qq
  version="$(apt-cache policy docker-registry 2>/dev/null | sed -n 's/^ *Candidate: *//p')"
fi
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  echo "registry.sh: apt knows no docker-registry package (run apt-get update)" >&2
  exit 1
fi
bin="$cache_root/registry-${version//[^A-Za-z0-9.+-]/_}"
if [ ! -x "$bin/docker-registry" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  echo "[registry] downloading docker-registry $version ..." >&2
  # apt's sandbox user may not write to a temporary directory of root's.
  (cd "$work" && apt-get download -qq -o APT::Sandbox::User=root "docker-registry=$version")
  dpkg-deb -x "$work"/docker-registry_*.deb "$work/root"
  mkdir -p "$bin"
  mv "$work/root/usr/bin/docker-registry" "$bin/docker-registry"
fi
echo "$bin/docker-registry"
