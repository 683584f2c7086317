//! Pure status decisions: what a child's conditions mean, what to do next, and how that reads
//! in the parent's status. The controllers only gather inputs and write the results.

pub mod apply;
pub mod conditions;
pub mod events;
pub mod failure;
pub mod kubeconfig;
pub mod pacing;
pub mod profiles;
pub mod reason;
pub mod write_failure;
