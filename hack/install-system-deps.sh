#!/usr/bin/env bash
# System packages the tests use, from Debian: lua5.4 (runs the Argo CD health check),
# openssl (control-plane certificates), curl. Installs only what is missing.
set -euo pipefail
missing=()
command -v lua5.4 >/dev/null || missing+=(lua5.4)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "install-system-deps: please install: ${missing[*]} (apt-get install -y ${missing[*]})" >&2
  exit 1
fi
echo "install-system-deps: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
