//! Names, labels and annotations derived from the objects this operator manages.
//!
//! Kubernetes names are DNS subdomains (lower case, at most 253 characters) and label values
//! at most 63 characters, while Fargate profile names allow upper case and '_' and reach 100
//! characters. Whenever a name has to be shortened or changed to fit, a stable hash of the
//! original is appended so two different inputs never map to the same name.

use sha2::{Digest, Sha256};

/// Field manager for server-side apply.
pub const FIELD_MANAGER: &str = "capt-fargate";
/// Finalizer on CAPTControlPlanes (CAPT's own string, so both agree on what it protects).
pub const CONTROL_PLANE_FINALIZER: &str = "controlplane.cluster.x-k8s.io/captcontrolplane";
/// Finalizer on WorkspaceTemplateApplies (CAPT's own string).
pub const APPLY_FINALIZER: &str = "infrastructure.cluster.x-k8s.io/finalizer";
/// crossplane-runtime's finalizer on managed resources such as Workspaces. Created with it,
/// a Workspace is not updated again by provider-terraform just to add it (crossplane-runtime
/// adds it only when missing), and it is removed by the provider once the resources are gone.
pub const PROVIDER_FINALIZER: &str = "finalizer.managedresource.crossplane.io";

/// Label: Cluster API cluster name.
pub const LABEL_CLUSTER_NAME: &str = "cluster.x-k8s.io/cluster-name";
/// Label: the CAPTControlPlane (label-safe form of its name) a WorkspaceTemplateApply belongs to.
pub const LABEL_CONTROL_PLANE: &str = "fargate.capt.cluster.x-k8s.io/control-plane";
/// Label: the Fargate profile (label-safe form of its name) of a WorkspaceTemplateApply.
pub const LABEL_PROFILE: &str = "fargate.capt.cluster.x-k8s.io/profile";
/// Label: what a WorkspaceTemplateApply creates (`eks-cluster` or `fargate-profile`).
pub const LABEL_COMPONENT: &str = "fargate.capt.cluster.x-k8s.io/component";
/// Component label value of the EKS cluster apply.
pub const COMPONENT_EKS: &str = "eks-cluster";
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
const MAX_LABEL: usize = 63;
const HASH_LEN: usize = 8;

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

/// The Secret the EKS workspace writes its outputs to (CAPT's name).
pub fn eks_connection_secret(control_plane: &str) -> String {
    object_name(&format!("{control_plane}-eks-connection"))
}

/// The Secret the VPC workspace writes its outputs to, as CAPT's cluster template names it.
pub fn vpc_connection_secret(control_plane: &str) -> String {
    object_name(&format!("{control_plane}-vpc-connection"))
}

/// The WorkspaceTemplateApply of one additional Fargate profile.
pub fn profile_apply_name(control_plane: &str, profile: &str) -> String {
    let raw = format!("{control_plane}-fargate-{profile}");
    // Profile names may hold '_' and upper case, which object names cannot; hashing the
    // original keeps "a_b" and "a-b" apart.
    fit(&raw, to_dns(&raw), MAX_NAME)
}

/// The Secret a Fargate profile workspace writes its outputs to.
pub fn profile_connection_secret(apply_name: &str) -> String {
    object_name(&format!("{apply_name}-connection"))
}

/// The cluster-scoped Workspace of a WorkspaceTemplateApply. CAPT drops the `-apply` suffix,
/// which collides across namespaces; the hash of `<namespace>/<name>` keeps names unique.
pub fn workspace_name(namespace: &str, apply_name: &str) -> String {
    let base = apply_name.strip_suffix("-apply").unwrap_or(apply_name);
    let hash = short_hash(&format!("{namespace}/{apply_name}"), HASH_LEN);
    let keep = MAX_NAME - HASH_LEN - 1;
    let head: String = base.chars().take(keep).collect();
    format!("{}-{hash}", head.trim_end_matches(['-', '.']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_pass_through_unchanged() {
        assert_eq!(
            object_name("demo-fargate-monitoring"),
            "demo-fargate-monitoring"
        );
        assert_eq!(label_value("monitoring"), "monitoring");
        assert_eq!(eks_apply_name("demo"), "demo-eks-controlplane-apply");
        assert_eq!(eks_connection_secret("demo"), "demo-eks-connection");
        assert_eq!(vpc_connection_secret("demo"), "demo-vpc-connection");
        assert_eq!(
            profile_apply_name("demo", "monitoring"),
            "demo-fargate-monitoring"
        );
    }

    #[test]
    fn profile_names_that_are_not_dns_names_get_distinct_hashed_names() {
        let underscore = profile_apply_name("demo", "batch_jobs");
        let dash = profile_apply_name("demo", "batch-jobs");
        let upper = profile_apply_name("demo", "Batch-Jobs");
        assert!(
            underscore.starts_with("demo-fargate-batch-jobs-"),
            "{underscore}"
        );
        assert_eq!(dash, "demo-fargate-batch-jobs");
        assert_ne!(underscore, dash);
        assert_ne!(upper, dash);
        assert_ne!(upper, underscore);
        // Stable: the same input always gives the same name.
        assert_eq!(underscore, profile_apply_name("demo", "batch_jobs"));
    }

    #[test]
    fn long_names_are_shortened_with_a_hash() {
        let cp = "c".repeat(200);
        let profile = "p".repeat(100);
        let name = profile_apply_name(&cp, &profile);
        assert!(name.len() <= 253, "{}", name.len());
        assert_ne!(name, profile_apply_name(&cp, &"q".repeat(100)));
        let label = label_value(&profile);
        assert!(label.len() <= 63);
        assert_ne!(label, label_value(&"p".repeat(99)));
    }

    #[test]
    fn workspace_names_differ_across_namespaces() {
        let a = workspace_name("team-a", "demo-eks-controlplane-apply");
        let b = workspace_name("team-b", "demo-eks-controlplane-apply");
        assert!(a.starts_with("demo-eks-controlplane-"), "{a}");
        assert_ne!(a, b);
        assert!(workspace_name("ns", &"x".repeat(253)).len() <= 253);
    }

    #[test]
    fn label_values_are_trimmed_to_alphanumeric_ends() {
        let v = label_value("_x_");
        assert!(v.starts_with('x'), "{v}");
        assert!(v.chars().last().unwrap().is_ascii_alphanumeric());
    }
}
