//! capt-fargate: manages Amazon EKS Fargate profiles for CAPT through Terraform workspaces.

#![warn(missing_docs)]
// kube's `#[kube(printcolumn(...))]` repeats `type_`/`json_path` keys by design; the lint reads
// them as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

pub mod api;
pub mod aws;
pub mod cli;
pub mod controller;
pub mod crdgen;
pub mod error;
pub mod heap_stats;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod rbac;
pub mod render;
pub mod run;
pub mod runtime;
pub mod server;
pub mod status;
