#!/usr/bin/env bash
# Builds the real Cluster API core manager, clusterctl and the manifest helper into
# target/capi/bin, from the Go module proxy at the release pinned in go.mod.
# Go's build cache makes a rebuild with nothing changed take seconds; a cold build of
# the manager takes about 10 minutes on 2 cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin="$root/target/capi/bin"
mkdir -p "$bin"
cd "$here"
export CGO_ENABLED=0
# -trimpath keeps the cache key independent of the checkout path, so clones share it.
flags=(-trimpath -ldflags "-s -w")
go build "${flags[@]}" -o "$bin/capi-manager" sigs.k8s.io/cluster-api/core
go build "${flags[@]}" -o "$bin/clusterctl" sigs.k8s.io/cluster-api/cmd/clusterctl
go build "${flags[@]}" -o "$bin/capi-manifests" ./cmd/capi-manifests
