//! capt-fargate: manages Amazon EKS Fargate profiles for CAPT through Terraform workspaces.

pub mod api;
pub mod cli;
pub mod controller;
pub mod crdgen;
pub mod diff;
pub mod error;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod rbac;
pub mod render;
pub mod run;
pub mod server;
pub mod status;
