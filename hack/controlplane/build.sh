#!/usr/bin/env bash
# Build kube-apiserver, kubectl, etcd and helm from source through the Go
# module proxy into a per-version cache outside the repository.
#
#   hack/controlplane/build.sh          # build what is missing, print the bin dir
#   hack/controlplane/build.sh node     # also the worker node's binaries (kubelet, kube-proxy,
#                                       # kube-scheduler, kube-controller-manager, coredns,
#                                       # crictl, pause); print their dir
#
# Env: JULIARUN_CP_CACHE  cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/juliarun-operator/bin)
#      GO                 go binary (default: go on PATH, else /usr/local/go/bin/go)
#
# Each binary is built in its own throwaway main module, because a module that
# requires k8s.io/kubernetes needs replace lines that etcd and helm must not see.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
[ -x "$GO" ] || { echo "build.sh: no Go toolchain (set GO=/path/to/go)" >&2; exit 1; }
export CGO_ENABLED=0 GOFLAGS=-mod=mod

versions="k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_helm-${HELM_VERSION}"
cache_root="${JULIARUN_CP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/juliarun-operator/bin}"
bin="$cache_root/$versions"
work="$cache_root/.work/$versions"
mkdir -p "$bin" "$work"

log() { echo "[controlplane] $*" >&2; }

# Path of the go.mod of module $1 at version $2, downloaded through the proxy.
download_gomod() {
  local out
  if ! out="$("$GO" mod download -json "$1@$2" 2>&1)"; then
    echo "build.sh: cannot download $1@$2 through the Go module proxy (GOPROXY=$("$GO" env GOPROXY))." >&2
    echo "Is the network/proxy reachable? go said:" >&2
    echo "$out" >&2
    exit 2
  fi
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' <<<"$out"
}

# Write a main module in $1 that requires $2@$3. Upstream's go/godebug lines
# are kept (they set runtime defaults); its replace lines are ignored in a
# dependency, so they are copied; a local ./path (k8s staging modules) becomes
# the published module at version $4, or is dropped when $4 is empty (etcd's
# sibling modules are already required at their real versions).
make_module() {
  local dir="$1" mod="$2" ver="$3" local_ver="$4" gomod
  gomod="$(download_gomod "$mod" "$ver")"
  mkdir -p "$dir"
  {
    echo "module juliarun.local/controlplane/$(basename "$dir")"
    grep -E '^(go|godebug) ' "$gomod"
    echo "require $mod $ver"
    awk -v lv="$local_ver" '
      /^replace \($/ { inblock = 1; next }
      inblock && /^\)/ { inblock = 0; next }
      {
        line = $0
        if (!inblock) { if (line !~ /^replace /) next; sub(/^replace /, "", line) }
        if (line !~ /=>/) next
        split(line, side, "=>"); split(side[1], l, " "); split(side[2], r, " ")
        if (r[1] !~ /^\.\.?\//) print "replace " line
        else if (lv != "") print "replace " l[1] " => " l[1] " " lv
      }' "$gomod"
  } >"$dir/go.mod"
}

# build <name> <dir> <package> <ldflags>
build() {
  local name="$1" dir="$2" pkg="$3" ldflags="$4" start
  start=$(date +%s)
  log "building $name ($pkg) ..."
  (cd "$dir" && "$GO" build -trimpath -ldflags "-s -w $ldflags" -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
  log "built $name in $(( $(date +%s) - start ))s"
}

have() { [ -x "$bin/$1" ] && log "$1: cached"; }

build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

k8s_dir="$work/kubernetes"
k8s_minor="${KUBERNETES_VERSION#v1.}"; k8s_minor="${k8s_minor%%.*}"
k8s_ld=""
# Both packages carry the version that kubectl version / the apiserver report.
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ld+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$k8s_minor"
  k8s_ld+=" -X $p.gitTreeState=clean -X $p.buildDate=$build_date"
done
# Staging modules are published as v0.<minor>.<patch> alongside v1.<minor>.<patch>.
k8s_module() { [ -f "$k8s_dir/go.mod" ] || make_module "$k8s_dir" k8s.io/kubernetes "$KUBERNETES_VERSION" "v0.${KUBERNETES_VERSION#v1.}"; }

if ! have kube-apiserver || ! have kubectl; then
  dir="$k8s_dir"
  k8s_module
  have kube-apiserver || build kube-apiserver "$dir" k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ld"
  have kubectl || build kubectl "$dir" k8s.io/kubernetes/cmd/kubectl "$k8s_ld"
fi

if ! have etcd; then
  dir="$work/etcd"
  make_module "$dir" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" ""
  # etcd's version is a constant in go.etcd.io/etcd/api/v3/version; nothing to inject.
  build etcd "$dir" go.etcd.io/etcd/server/v3 ""
fi

if ! have helm; then
  dir="$work/helm"
  make_module "$dir" helm.sh/helm/v3 "$HELM_VERSION" ""
  # Like helm's Makefile: the Kubernetes version helm assumes for lint and
  # .Capabilities comes from the client-go it is built with (v0.X.Y -> 1.X).
  client_go="$(cd "$dir" && "$GO" list -m -f '{{.Version}}' k8s.io/client-go)"
  kminor="${client_go#v0.}"; kminor="${kminor%%.*}"
  helm_ld="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    helm_ld+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$kminor"
  done
  build helm "$dir" helm.sh/helm/v3/cmd/helm "$helm_ld"
fi

[ "${1:-}" = node ] || { echo "$bin"; exit 0; }

# --- the worker node ----------------------------------------------------------
# Its own directory: its pins (CoreDNS, crictl) are not in the control plane's name.
cp_bin="$bin"
bin="$cache_root/node-k8s-${KUBERNETES_VERSION}_coredns-${COREDNS_VERSION}_crictl-${CRICTL_VERSION}"
mkdir -p "$bin"
node_src="$here/../node"
# One at a time: the machine's cores are shared, and these share most packages.
for cmd in kubelet kube-proxy kube-scheduler kube-controller-manager; do
  have "$cmd" && continue
  k8s_module
  build "$cmd" "$k8s_dir" "k8s.io/kubernetes/cmd/$cmd" "$k8s_ld"
done

if ! have coredns; then
  # Our own main (hack/node/coredns/main.go) links only the plugins the node's Corefile uses.
  dir="$work/coredns"
  make_module "$dir" github.com/coredns/coredns "$COREDNS_VERSION" ""
  cp "$node_src/coredns/main.go" "$dir/main.go"
  build coredns "$dir" . "-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION"
fi

if ! have crictl; then
  dir="$work/cri-tools"
  make_module "$dir" sigs.k8s.io/cri-tools "$CRICTL_VERSION" ""
  build crictl "$dir" sigs.k8s.io/cri-tools/cmd/crictl "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION"
fi

if ! have pause; then
  dir="$work/pause"
  mkdir -p "$dir"
  printf 'module juliarun.local/node/pause\n\ngo 1.22\n' >"$dir/go.mod"
  cp "$node_src/pause/main.go" "$dir/main.go"
  build pause "$dir" . ""
fi

ln -sfn "$cp_bin" "$bin/controlplane"
echo "$bin"
