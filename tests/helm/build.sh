#!/usr/bin/env bash
# Builds the helm CLI into target/helm/bin/helm from the version pinned in go.mod.
# Go's build cache makes a rebuild with nothing changed take seconds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin="$root/target/helm/bin"
mkdir -p "$bin"
cd "$here"
export CGO_ENABLED=0
# -trimpath keeps the cache key independent of the checkout path, so clones share it.
# The same ldflags as helm's Makefile: its version, and the Kubernetes version of its client-go
# as the default of `helm template` and `helm lint` (without it they assume v1.20).
version=$(go list -m -f '{{.Version}}' helm.sh/helm/v3)
k8s=$(go list -m -f '{{.Version}}' k8s.io/client-go)   # v0.MINOR.PATCH
k8s_minor=$(echo "$k8s" | cut -d. -f2)
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
for pkg in pkg/chartutil pkg/lint/rules; do
  ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$k8s_minor"
done
go build -trimpath -ldflags "$ldflags" -o "$bin/helm" helm.sh/helm/v3/cmd/helm
