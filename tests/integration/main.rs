//! Integration tests against the real control plane (`tests/cluster/up`). One binary, so the
//! crate and its dependencies are linked once.

#[path = "../support/mod.rs"]
mod support;

mod behaviour;
mod cli;
mod cluster_is_real;
mod contract;
mod crd_validation;
mod faults;
mod infra_cluster;
mod kubeconfig;
mod lifecycle;
mod naming;
mod rbac;
mod sequencing;
mod terraform_modules;
mod workspace_apply;
mod write_path;
