//! Every reason this operator sets on a condition or a profile status entry, in one place so
//! that two meanings never share a word and one meaning never gets two. (Kubernetes Event
//! reasons are chosen in `status::events`.)

// The control plane's Ready condition.

/// The EKS cluster workspace is ready.
pub const READY: &str = "Ready";
/// The EKS cluster workspace failed with an error that needs a person.
pub const WORKSPACE_ERROR: &str = "WorkspaceError";

// The control plane's Cluster API contract conditions (Available, Paused, Deleting).

/// The control plane can be used.
pub const AVAILABLE: &str = "Available";
/// Reconciliation is paused.
pub const PAUSED: &str = "Paused";
/// Reconciliation is not paused.
pub const NOT_PAUSED: &str = "NotPaused";
/// The control plane is not being deleted.
pub const NOT_DELETING: &str = "NotDeleting";
// The control plane's KubeconfigReady condition (`status::kubeconfig`).

/// Both kubeconfig Secrets are written and current.
pub const KUBECONFIG_AVAILABLE: &str = "KubeconfigAvailable";
/// The EKS connection secret does not exist yet (a control plane's `KubeconfigReady`), or the
/// VPC's lacks keys (a CAPTCluster's `VPCReady`).
pub const WAITING_FOR_CONNECTION: &str = "WaitingForConnectionSecret";
/// The EKS connection secret's endpoint or CA is missing or malformed.
pub const INVALID_CONNECTION: &str = "InvalidConnectionSecret";
/// `spec.controlPlaneConfig.region` is not set, so no token can be signed.
pub const REGION_NOT_SET: &str = "RegionNotSet";
/// The operator has no AWS credentials.
pub const NO_CREDENTIALS: &str = "NoCredentials";
/// A token could not be minted now; retried.
pub const TOKEN_ERROR: &str = "TokenError";
/// A Secret of a kubeconfig's name exists and is not this control plane's.
pub const KUBECONFIG_SECRET_CONFLICT: &str = "KubeconfigSecretConflict";

// A CAPTCluster's VPCReady and Ready conditions (`controller::infra_cluster::status`).

/// A VPC created from the template is ready.
pub const VPC_CREATED: &str = "VPCCreated";
/// The existing VPC has been described and is ready to use.
pub const EXISTING_VPC_USED: &str = "ExistingVPCUsed";
/// The VPC workspace is being created or updated.
pub const VPC_CREATING: &str = "VPCCreating";
/// The VPC workspace failed with an error that needs a person.
pub const VPC_CREATION_FAILED: &str = "VPCCreationFailed";

// Shared by the control plane, its profiles and the applies.

/// Being created: an apply's Workspace was written and its provider has not reported yet, or
/// a profile or the control plane is being created.
pub const CREATING: &str = "Creating";
/// A Workspace applied before whose current spec provider-terraform has not applied yet (its
/// `Synced` is for an older generation, or reports an error).
pub const APPLYING: &str = "Applying";
/// Being deleted.
pub const DELETING: &str = "Deleting";
/// A transient error is retried; it is not a failure (`status::failure`).
pub const TRANSIENT_ERROR: &str = "TransientError";
/// provider-terraform does not reconcile a Workspace annotated `crossplane.io/paused: "true"`
/// and says so with this `Synced` reason (crossplane-runtime's word); an apply mirrors it. Not
/// a failure, and no Terraform runs meanwhile.
pub const RECONCILE_PAUSED: &str = "ReconcilePaused";

// Fargate profile status entries and conditions.

/// Waiting for the EKS cluster or its secrets.
pub const WAITING_FOR_CLUSTER: &str = "WaitingForCluster";
/// Waiting for another profile (one operation at a time per cluster).
pub const WAITING_FOR_PROFILE: &str = "WaitingForProfile";
/// An earlier profile failed.
pub const BLOCKED_BY_FAILURE: &str = "BlockedByFailedProfile";
/// The EKS cluster failed.
pub const CLUSTER_FAILED: &str = "ClusterFailed";
/// The old profile is deleted before the changed one is created.
pub const REPLACING: &str = "Replacing";
/// Its Terraform destroy failed with an error that needs a person.
pub const DELETE_FAILED: &str = "DeleteFailed";

// A profile whose apply cannot be written (`status::write_failure`).

/// An object of the apply's name exists and is not this control plane's.
pub const APPLY_NAME_CONFLICT: &str = "ApplyNameConflict";
/// The API server forbids the write (RBAC, or an admission policy).
pub const FORBIDDEN: &str = "Forbidden";
/// The API server rejects the object as invalid.
pub const INVALID: &str = "Invalid";

// Set by the apply controller on WorkspaceTemplateApplies.

/// Required secrets or keys are missing.
pub const WAITING_FOR_SECRETS: &str = "WaitingForSecrets";
/// Required workspaces are not ready.
pub const WAITING_FOR_WORKSPACES: &str = "WaitingForWorkspaces";
/// A deleted apply's destroy waits: others still read its outputs when they are destroyed
/// (a VPC apply while control planes of its cluster exist).
pub const IN_USE: &str = "InUse";
/// The WorkspaceTemplate exists.
pub const TEMPLATE_FOUND: &str = "TemplateFound";
/// The WorkspaceTemplate does not exist.
pub const TEMPLATE_NOT_FOUND: &str = "TemplateNotFound";
/// The WorkspaceTemplate cannot be rendered.
pub const INVALID_TEMPLATE: &str = "InvalidTemplate";
/// A Workspace of that name belongs to something else.
pub const WORKSPACE_CONFLICT: &str = "WorkspaceNameConflict";
/// Nothing went wrong.
pub const RECONCILE_SUCCESS: &str = "ReconcileSuccess";
