//! Names, labels and annotations derived from the objects this operator manages.
//!
//! Kubernetes names are DNS subdomains (lower case, at most 253 characters) and label values
//! at most 63 characters, while Fargate profile names allow upper case and '_' and reach 100
//! characters. Whenever a name has to be shortened or changed to fit, a stable hash of the
//! original is appended so two different inputs never map to the same name.
//!
//! Derived names that can end up in a label value (Terraform's Kubernetes state backend and
//! other tools label objects with a Workspace's name) are at most 63 characters: profile
//! applies (at most [`MAX_PROFILE_APPLY`], so that `<apply>-connection` fits too), their
//! connection secrets and Workspaces. Names CAPT itself defines (`<cp>-eks-controlplane-apply`,
//! `<cp>-eks-connection`, `<cp>-vpc-connection`) are kept as CAPT spells them: other objects of
//! a CAPT installation refer to them, and they reach labels only through [`label_value`].

use sha2::{Digest, Sha256};

/// Field manager named by every write of this operator (creates, merge patches, and the
/// server-side apply of a control plane's status).
pub const FIELD_MANAGER: &str = "capt-fargate";
/// Finalizer on CAPTControlPlanes (CAPT's own string, so both agree on what it protects).
pub const CONTROL_PLANE_FINALIZER: &str = "controlplane.cluster.x-k8s.io/captcontrolplane";
/// clusterctl's annotation: while an object in a move's graph carries it, `clusterctl move`
/// (after pausing the Cluster) waits before copying anything. An apply carries it while its
/// Workspace lives on this management cluster.
pub const BLOCK_MOVE_ANNOTATION: &str = "clusterctl.cluster.x-k8s.io/block-move";
/// Annotation on an apply whose Workspace was paused for a Cluster API pause (value: the
/// Workspace's name): its Terraform state may outlive the Workspace object here (after
/// `clusterctl move` the target has the apply but not yet its Workspace), so a deletion
/// that finds no Workspace creates it again to destroy what the state holds. Dropped once
/// the Workspace exists (again) and runs.
pub const RELEASED_ANNOTATION: &str = "fargate.capt.cluster.x-k8s.io/workspace-released";
/// crossplane-runtime's pause annotation: while it is `"true"` the provider's managed
/// reconciler does nothing for the Workspace, not even a deletion, and reports `Synced=False`
/// with reason `ReconcilePaused` (crossplane docs, "Paused" managed resources).
pub const CROSSPLANE_PAUSED_ANNOTATION: &str = "crossplane.io/paused";
/// Marks a Workspace this operator paused ([`CROSSPLANE_PAUSED_ANNOTATION`]) because its
/// apply's Cluster is paused: only such pauses are lifted on unpause, or released (deleted
/// under `deletionPolicy: Orphan`) once `clusterctl move` has taken the apply away; a pause
/// a user set by hand is left alone.
pub const WORKSPACE_PAUSED_ANNOTATION: &str = "fargate.capt.cluster.x-k8s.io/paused-for-cluster";
/// Finalizer on WorkspaceTemplateApplies (CAPT's own string).
pub const APPLY_FINALIZER: &str = "infrastructure.cluster.x-k8s.io/finalizer";
/// Finalizer on Secrets that the operator's Workspaces read (var files): a Secret deleted while
/// one reads it stays until that Workspace is destroyed (`controller::secret_guard`).
pub const SECRET_FINALIZER: &str = "fargate.capt.cluster.x-k8s.io/read-by-workspace";
/// Finalizer on CAPTClusters (CAPT's own string).
pub const CAPT_CLUSTER_FINALIZER: &str = "infrastructure.cluster.x-k8s.io/captcluster";
/// Finalizer on a WorkspaceTemplateApply whose connection Secret other workspaces still read
/// when they are destroyed (a VPC apply while control planes of its cluster exist): while it
/// is there, the apply's Workspace is not deleted, whoever deletes the apply (its owner's
/// garbage collection, a namespace deletion, a person). The CAPTCluster controller removes it.
pub const IN_USE_FINALIZER: &str = "infrastructure.cluster.x-k8s.io/in-use";
/// crossplane-runtime's finalizer on managed resources such as Workspaces. Created with it,
/// a Workspace is not updated again by provider-terraform just to add it (crossplane-runtime
/// adds it only when missing), and it is removed by the provider once the resources are gone.
pub const PROVIDER_FINALIZER: &str = "finalizer.managedresource.crossplane.io";

/// Label: Cluster API cluster name.
pub const LABEL_CLUSTER_NAME: &str = "cluster.x-k8s.io/cluster-name";
/// Cluster API's watch-filter label: an operator run with `--watch-filter VALUE` reconciles
/// only objects carrying it with that value; a control plane's children inherit it.
pub const LABEL_WATCH_FILTER: &str = "cluster.x-k8s.io/watch-filter";
/// Label: the CAPTControlPlane (label-safe form of its name) a WorkspaceTemplateApply belongs to.
pub const LABEL_CONTROL_PLANE: &str = "fargate.capt.cluster.x-k8s.io/control-plane";
/// Label: the Fargate profile (label-safe form of its name) of a WorkspaceTemplateApply.
pub const LABEL_PROFILE: &str = "fargate.capt.cluster.x-k8s.io/profile";
/// Label: what a WorkspaceTemplateApply creates (`eks-cluster` or `fargate-profile`).
pub const LABEL_COMPONENT: &str = "fargate.capt.cluster.x-k8s.io/component";
/// Component label value of the EKS cluster apply.
pub const COMPONENT_EKS: &str = "eks-cluster";
/// Component label value of a CAPTCluster's VPC apply.
pub const COMPONENT_VPC: &str = "vpc";
/// Label on a VPC apply: the CAPTCluster (label-safe form of its name) it belongs to.
pub const LABEL_CAPT_CLUSTER: &str = "infrastructure.cluster.x-k8s.io/captcluster";
/// Component label value of a Fargate profile apply.
pub const COMPONENT_FARGATE_PROFILE: &str = "fargate-profile";
/// Annotation: the exact Fargate profile name.
pub const ANNOTATION_PROFILE_NAME: &str = "fargate.capt.cluster.x-k8s.io/profile-name";
/// Annotation: hash of the settings AWS cannot change on an existing profile.
pub const ANNOTATION_PROFILE_HASH: &str = "fargate.capt.cluster.x-k8s.io/immutable-hash";
/// Annotation on every child the operator writes (WorkspaceTemplateApplies, Workspaces): what
/// it last wrote, as `{"digest":…,"labels":[…],"annotations":[…]}` (see `diff::Applied`).
pub const ANNOTATION_APPLIED: &str = "fargate.capt.cluster.x-k8s.io/applied";

/// Label on a Workspace: namespace of its WorkspaceTemplateApply.
pub const LABEL_APPLY_NAMESPACE: &str = "infrastructure.cluster.x-k8s.io/apply-namespace";
/// Label on a Workspace: name (label-safe form) of its WorkspaceTemplateApply.
pub const LABEL_APPLY_NAME: &str = "infrastructure.cluster.x-k8s.io/apply-name";
/// Label on a Workspace: UID of its WorkspaceTemplateApply, which proves ownership.
pub const LABEL_APPLY_UID: &str = "infrastructure.cluster.x-k8s.io/apply-uid";
/// Annotation on a Workspace: `<namespace>/<name>` of its WorkspaceTemplateApply.
pub const ANNOTATION_APPLY: &str = "infrastructure.cluster.x-k8s.io/apply";

const MAX_NAME: usize = 253;
/// Longest label value (Kubernetes), and so the longest derived name that may become one.
pub const MAX_LABEL: usize = 63;
const HASH_LEN: usize = 8;
/// Suffix of a profile apply's connection secret.
const CONNECTION_SUFFIX: &str = "-connection";
/// Longest derived profile apply name: its connection secret `<apply>-connection` then stays
/// within [`MAX_LABEL`] as well.
pub const MAX_PROFILE_APPLY: usize = MAX_LABEL - CONNECTION_SUFFIX.len();

/// First `len` hex digits of the SHA-256 of `input`: stable across builds and platforms.
pub fn short_hash(input: &str, len: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    Sha256::digest(input.as_bytes())
        .iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]])
        .take(len)
        .map(char::from)
        .collect()
}

/// Lower-cases and replaces characters a DNS name cannot hold.
fn to_dns(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '.' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect()
}

/// `candidate` made into a valid name of at most `max` characters. If anything had to change,
/// the result ends in `-<hash of original>` so that distinct originals stay distinct.
fn fit(original: &str, candidate: String, max: usize) -> String {
    if candidate == original && candidate.len() <= max {
        return candidate;
    }
    let hash = short_hash(original, HASH_LEN);
    let keep = max - HASH_LEN - 1;
    let mut head: String = candidate.chars().take(keep).collect();
    while head.ends_with(['-', '.', '_']) {
        head.pop();
    }
    format!("{head}-{hash}")
}

/// A valid object name built from `raw` (lossless when `raw` already is one).
pub fn object_name(raw: &str) -> String {
    fit(raw, to_dns(raw), MAX_NAME)
}

/// A valid label value built from `raw` (lossless when `raw` already is one).
pub fn label_value(raw: &str) -> String {
    let candidate: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let candidate = candidate
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    fit(raw, candidate, MAX_LABEL)
}

/// The EKS cluster WorkspaceTemplateApply of a control plane (CAPT's default name).
pub fn eks_apply_name(control_plane: &str) -> String {
    object_name(&format!("{control_plane}-eks-controlplane-apply"))
}

/// Suffix of the EKS workspace's connection secret.
pub const EKS_CONNECTION_SUFFIX: &str = "-eks-connection";

/// The Secret the EKS workspace writes its outputs to (CAPT's name).
pub fn eks_connection_secret(control_plane: &str) -> String {
    object_name(&format!("{control_plane}{EKS_CONNECTION_SUFFIX}"))
}

/// Suffix of the VPC workspace's connection secret (see [`vpc_connection_secret`]).
pub const VPC_CONNECTION_SUFFIX: &str = "-vpc-connection";

/// The Secret the VPC workspace writes its outputs to, as CAPT's cluster template names it.
pub fn vpc_connection_secret(control_plane: &str) -> String {
    object_name(&format!("{control_plane}{VPC_CONNECTION_SUFFIX}"))
}

/// The VPC WorkspaceTemplateApply of a CAPTCluster (CAPT's default name, `<name>-vpc`).
pub fn vpc_apply_name(capt_cluster: &str) -> String {
    object_name(&format!("{capt_cluster}-vpc"))
}

/// `head` cut to leave room for `-<hash>` within `max` characters, without a trailing
/// separator, followed by `-<hash>`.
fn with_hash(head: &str, hash: &str, max: usize) -> String {
    let keep = max - hash.len() - 1;
    let head: String = head.chars().take(keep).collect();
    format!("{}-{hash}", head.trim_end_matches(['-', '.', '_']))
}

/// The WorkspaceTemplateApply of one additional Fargate profile, derived for a profile that
/// has none yet: `<control plane>-fargate-<profile>` in lower case with '_' as '-', cut to fit,
/// then `-` and 8 hex digits of the SHA-256 of `<control plane>/<profile>`; at most
/// [`MAX_PROFILE_APPLY`] (52) characters.
///
/// The hash covers the exact pair, separated by '/', which neither a Kubernetes name nor a
/// Fargate profile name can contain, so two pairs never share it: `shop` + `fargate-api` and
/// `shop-fargate` + `api` read alike but get different names. The readable part is only a
/// convenience for people. An apply created under an earlier rule keeps its name
/// ([`profile_apply_name_in_use`]).
pub fn profile_apply_name(control_plane: &str, profile: &str) -> String {
    let hash = short_hash(&format!("{control_plane}/{profile}"), HASH_LEN);
    let head = to_dns(&format!("{control_plane}-fargate-{profile}")).replace('.', "-");
    with_hash(&head, &hash, MAX_PROFILE_APPLY)
}

/// The apply name of `profile`: the name of an apply the control plane already owns for it
/// (`owned` lists `(profile annotation, apply name)` of its profile applies), else `derived`.
///
/// Applies created under an earlier naming rule keep their name, so an upgrade neither
/// creates a second apply for a profile (which would try to create the same Fargate profile
/// in AWS again) nor deletes the existing one. Once such an apply is deleted (profile
/// replaced or removed), the profile's next apply gets the derived name. With several
/// (which the one-at-a-time plan never creates), the derived name wins if among them, else the
/// first by name, so the choice is stable.
pub fn profile_apply_name_in_use<'a>(
    profile: &str,
    derived: String,
    owned: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut names: Vec<&str> = owned
        .into_iter()
        .filter(|(p, _)| *p == profile)
        .map(|(_, name)| name)
        .collect();
    if names.is_empty() || names.contains(&derived.as_str()) {
        return derived;
    }
    names.sort_unstable();
    names[0].to_string()
}

/// The Secret a Fargate profile workspace writes its outputs to: `<apply>-connection`, which
/// for a derived apply name is at most [`MAX_LABEL`] characters (a longer apply name from
/// an earlier naming rule keeps its secret's name, so no Workspace changes on upgrade).
pub fn profile_connection_secret(apply_name: &str) -> String {
    object_name(&format!("{apply_name}{CONNECTION_SUFFIX}"))
}

/// The cluster-scoped Workspace of a WorkspaceTemplateApply: the apply name without CAPT's
/// `-apply` suffix, cut to fit, then `-` and 8 hex digits of the SHA-256 of
/// `<namespace>/<apply name>`; at most [`MAX_LABEL`] (63) characters. The hash keeps the
/// names of applies of equal names in different namespaces apart (CAPT drops the suffix only,
/// which collides). An existing Workspace keeps the name recorded in its apply's status.
pub fn workspace_name(namespace: &str, apply_name: &str) -> String {
    let base = apply_name.strip_suffix("-apply").unwrap_or(apply_name);
    let hash = short_hash(&format!("{namespace}/{apply_name}"), HASH_LEN);
    with_hash(base, &hash, MAX_LABEL)
}

#[cfg(test)]
#[path = "names_tests.rs"]
mod tests;
