#!/usr/bin/env bash
# Builds the real Kubernetes control plane the operator and e2e tests run against
# (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, helm)
# from their Go modules, once per version, into a cache directory. A later run
# with the binaries present does nothing. Takes many minutes on 2 cores.
#
# Usage: e2e/control-plane/build.sh          build (or find) and print the bin dir
#        MOSAIC_CACHE=/path e2e/control-plane/build.sh
set -euo pipefail

K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
HELM_VERSION=v3.22.0

cache_root="${MOSAIC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mosaic}"
bin="$cache_root/control-plane-$K8S_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd helm)

have_all() {
  for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
}
if have_all; then echo "$bin"; exit 0; fi

command -v go >/dev/null || { echo "build.sh: Go is needed to build the control plane" >&2; exit 1; }
mkdir -p "$bin"
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath" GOTOOLCHAIN=local
log() { echo "build.sh: $*" >&2; }

# A published module that replaces its own staging modules with local paths, as
# k8s.io/kubernetes and etcd do, cannot be `go install`ed; build a copy whose
# replaces point at the released versions of those modules instead.
module_copy() { # module@version -> dir of a writable copy
  local dir
  dir="$(go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  cp -r "$dir" "$work/$(basename "$dir")"
  chmod -R u+w "$work/$(basename "$dir")"
  echo "$work/$(basename "$dir")"
}

if [[ ! -x "$bin/kube-apiserver" || ! -x "$bin/kubectl" || ! -x "$bin/kube-scheduler" || ! -x "$bin/kube-controller-manager" ]]; then
  log "building Kubernetes $K8S_VERSION (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl)"
  src="$(module_copy "k8s.io/kubernetes@$K8S_VERSION")"
  staging_version="v0.${K8S_VERSION#v1.}"
  (
    cd "$src"
    rm -rf vendor go.work go.work.sum
    for m in $(sed -n 's|^\t\(k8s.io/[a-z0-9-]*\) => ./staging/.*|\1|p' go.mod); do
      go mod edit -replace "$m=$m@$staging_version"
    done
    minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
    ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
    done
    go build -ldflags "$ldflags" -o "$bin/" ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kube-scheduler ./cmd/kubectl
  )
fi

if [[ ! -x "$bin/etcd" ]]; then
  log "building etcd $ETCD_VERSION"
  src="$(module_copy "go.etcd.io/etcd/server/v3@$ETCD_VERSION")"
  (
    cd "$src"
    go mod edit -json | sed -n 's/.*"Path": "\(go.etcd.io\/etcd\/[^"]*\)".*/\1/p' | sort -u | while read -r m; do
      go mod edit -dropreplace "$m" 2>/dev/null || true
    done
    go build -ldflags "-s -w" -o "$bin/etcd" .
  )
fi

if [[ ! -x "$bin/helm" ]]; then
  log "building helm $HELM_VERSION"
  GOBIN="$bin" go install -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi

have_all || { log "some binaries are missing from $bin"; exit 1; }
echo "$bin"
