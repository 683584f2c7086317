#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and etcd into target/testcluster/bin.
# Go's build cache makes a rebuild with nothing changed take seconds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin="$root/target/testcluster/bin"
mkdir -p "$bin"
cd "$here"
export CGO_ENABLED=0
# -trimpath keeps the cache key independent of the checkout path, so clones share it.
version=v1.34.4
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/client-go/pkg/version.gitVersion=$version"
flags=(-trimpath -ldflags "$ldflags")
go build "${flags[@]}" -o "$bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
go build "${flags[@]}" -o "$bin/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager
go build "${flags[@]}" -o "$bin/etcd" ./cmd/etcd
