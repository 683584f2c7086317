//go:build tools

// Package tools pins the Cluster API core manager and clusterctl that the
// tests run against, so `go build` takes them from the module proxy.
package tools

import (
	_ "sigs.k8s.io/cluster-api/cmd/clusterctl"
	_ "sigs.k8s.io/cluster-api/core"
)
