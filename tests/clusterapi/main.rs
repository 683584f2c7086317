//! Tests against the real Cluster API core manager (built from the Go module proxy by
//! `tests/capi/up`), on a management cluster of their own: what a Cluster API user sees on
//! the `Cluster` whose control plane is a CAPTControlPlane.

#[path = "../support/mod.rs"]
mod support;

mod clusterctl;
mod control_plane_contract;
mod full_lifecycle;
