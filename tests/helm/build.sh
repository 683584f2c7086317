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
version=$(go list -m -f '{{.Version}}' helm.sh/helm/v3)
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
go build -trimpath -ldflags "$ldflags" -o "$bin/helm" helm.sh/helm/v3/cmd/helm
