//! capt-fargate: manages Amazon EKS Fargate profiles for CAPT through Terraform workspaces.

pub mod api;
pub mod crdgen;
pub mod names;
pub mod render;
pub mod status;
