//! Custom resource types: the ones this project defines and the third-party ones it uses.

pub mod cluster;
pub mod compact;
pub mod conditions;
pub mod controlplane;
pub mod controlplane_template;
pub mod infra_cluster;
pub mod schema;
pub mod workspace;
pub mod workspace_template;

pub use controlplane::*;
pub use controlplane_template::*;
pub use infra_cluster::*;
pub use workspace::Workspace;
pub use workspace_template::*;
