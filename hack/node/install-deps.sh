#!/usr/bin/env bash
# Debian packages the local node (`juliarun cluster up --node`) and the image build
# (hack/node/image.sh) use: containerd + runc run the pods, containernetworking-plugins
# connects them, iptables is kube-proxy's, buildah + mmdebstrap build the image without
# Docker. Installs only what is missing; needs root (as the node itself does).
set -euo pipefail
want=(containerd runc containernetworking-plugins iptables buildah mmdebstrap iproute2)
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: please install: ${missing[*]} (apt-get install -y --no-install-recommends ${missing[*]})" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
apt-get update -qq
# No recommends: crun (which fails on a hybrid cgroup hierarchy) and slirp/fuse helpers stay out.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
