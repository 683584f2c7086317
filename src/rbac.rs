//! The permissions the operator's code uses, as (API group, resource, verbs). The Helm chart's
//! ClusterRole must grant exactly these; a test compares them and runs the operator with the
//! chart's ServiceAccount to prove they are enough.
//!
//! Where each comes from:
//! - `list`/`watch`: the watches of CAPTControlPlanes, applies, WorkspaceTemplates, Workspaces
//!   and Secrets. The Secret watch is a full watch (not metadata-only: the key names are in
//!   `data`); values become digests before the cache keeps them, except the EKS connection
//!   secret's public endpoint, CA and name (`runtime::shared`).
//! - `create` + `patch` on Secrets: the `<cluster>-kubeconfig` and `<cluster>-user-kubeconfig`
//!   Secrets (`controller::control_plane::kubeconfig`). RBAC cannot limit `create` to names,
//!   so it covers every Secret in the operator's scope; the code writes no other.
//! - `get`: templates and Secrets outside the operator's namespace are read directly, and a
//!   create that finds its child there already reads it (`runtime::write`).
//! - `create` + `patch` on applies and Workspaces: children are created with a POST and
//!   updated with JSON merge patches at the version read (`runtime::write`); no server-side
//!   apply.
//! - `patch` on `/status`: a control plane's status is server-side applied, an apply's status
//!   merge-patched, both on the status subresource.
//! - `patch` on the main resource of CAPTControlPlane and of applies: adding and removing the
//!   finalizer (merge patches, `runtime::finalizer`).
//! - `update` on `captcontrolplanes/finalizers`: the applies' owner reference sets
//!   `blockOwnerDeletion`, which clusters running the `OwnerReferencesPermissionEnforcement`
//!   admission plugin only allow to users who may update the owner's finalizers.
//! - `patch` on Secrets also adds and removes the secret guard's finalizer (a merge patch of
//!   `metadata.finalizers`), which keeps a Secret that Workspaces read until they are
//!   destroyed (`controller::secret_guard`); the data of other Secrets is never written.
//! - `delete`: Fargate profile applies, the EKS apply on teardown, and Workspaces on cleanup.
//! - CAPTClusters: watched, status server-side applied, finalizer patched; the VPC apply's
//!   owner reference needs `captclusters/finalizers` like the control plane's. Cluster API
//!   `clusters` are only watched (for `spec.paused`); CAPTControlPlanes are also watched
//!   metadata-only by the CAPTCluster controller (same `list`/`watch`).
//! - `events.k8s.io` `create`/`patch`: `runtime::event_series` creates an Event and patches
//!   its series when the same event repeats.
//! - `get`/`list`/`watch` on Cluster API `clusters`: a Cluster's `spec.paused` pauses its
//!   control planes (`controller::control_plane::pause`); never written.
//!
//! [`FORBIDDEN`] lists what the operator never does, which neither [`RULES`] nor the chart may
//! grant.

/// One RBAC rule: `verbs` on `resource` (optionally `resource/subresource`) in API `group`
/// (`""` is the core group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// API group; `""` for the core group.
    pub group: &'static str,
    /// Plural resource name, with `/subresource` where it applies to one.
    pub resource: &'static str,
    /// Verbs, sorted.
    pub verbs: &'static [&'static str],
}

impl Rule {
    /// Whether the resource is cluster-scoped (needs a ClusterRole even when the operator
    /// watches one namespace).
    pub fn cluster_scoped(&self) -> bool {
        CLUSTER_SCOPED.contains(&(self.group, self.resource))
    }
}

/// Cluster-scoped resources among [`RULES`].
const CLUSTER_SCOPED: &[(&str, &str)] = &[("tf.upbound.io", "workspaces")];

/// What the controllers need.
pub const RULES: &[Rule] = &[
    Rule {
        group: "controlplane.cluster.x-k8s.io",
        resource: "captcontrolplanes",
        verbs: &["get", "list", "patch", "watch"],
    },
    Rule {
        group: "controlplane.cluster.x-k8s.io",
        resource: "captcontrolplanes/status",
        verbs: &["patch"],
    },
    Rule {
        group: "controlplane.cluster.x-k8s.io",
        resource: "captcontrolplanes/finalizers",
        verbs: &["update"],
    },
    Rule {
        group: "infrastructure.cluster.x-k8s.io",
        resource: "captclusters",
        verbs: &["get", "list", "patch", "watch"],
    },
    Rule {
        group: "infrastructure.cluster.x-k8s.io",
        resource: "captclusters/status",
        verbs: &["patch"],
    },
    Rule {
        group: "infrastructure.cluster.x-k8s.io",
        resource: "captclusters/finalizers",
        verbs: &["update"],
    },
    Rule {
        group: "cluster.x-k8s.io",
        resource: "clusters",
        verbs: &["get", "list", "watch"],
    },
    Rule {
        group: "infrastructure.cluster.x-k8s.io",
        resource: "workspacetemplateapplies",
        verbs: &["create", "delete", "get", "list", "patch", "watch"],
    },
    Rule {
        group: "infrastructure.cluster.x-k8s.io",
        resource: "workspacetemplateapplies/status",
        verbs: &["patch"],
    },
    Rule {
        group: "infrastructure.cluster.x-k8s.io",
        resource: "workspacetemplates",
        verbs: &["get", "list", "watch"],
    },
    Rule {
        group: "tf.upbound.io",
        resource: "workspaces",
        verbs: &["create", "delete", "get", "list", "patch", "watch"],
    },
    Rule {
        group: "",
        resource: "secrets",
        verbs: &["create", "get", "list", "patch", "watch"],
    },
    Rule {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
    },
];

/// What leader election needs, in the Lease's namespace only: kube-lease-manager reads the
/// Lease, creates it when missing, and takes or renews it with patches.
pub const LEADER_ELECTION_RULES: &[Rule] = &[Rule {
    group: "coordination.k8s.io",
    resource: "leases",
    verbs: &["create", "get", "patch"],
}];

/// (group, resource, verb) the operator never uses and must not be granted: Secrets are
/// never deleted (the kubeconfig Secrets go with their owner) or replaced, the user's CAPTControlPlanes and WorkspaceTemplates are never created,
/// replaced or deleted, children are patched, never replaced (`update`), and nothing outside
/// [`RULES`] and [`LEADER_ELECTION_RULES`] is touched.
pub const FORBIDDEN: &[(&str, &str, &str)] = &[
    ("", "secrets", "delete"),
    ("", "secrets", "update"),
    ("", "configmaps", "get"),
    (
        "controlplane.cluster.x-k8s.io",
        "captcontrolplanes",
        "create",
    ),
    (
        "controlplane.cluster.x-k8s.io",
        "captcontrolplanes",
        "delete",
    ),
    (
        "controlplane.cluster.x-k8s.io",
        "captcontrolplanes",
        "update",
    ),
    (
        "infrastructure.cluster.x-k8s.io",
        "workspacetemplates",
        "delete",
    ),
    (
        "infrastructure.cluster.x-k8s.io",
        "workspacetemplates",
        "patch",
    ),
    (
        "infrastructure.cluster.x-k8s.io",
        "workspacetemplateapplies",
        "update",
    ),
    ("infrastructure.cluster.x-k8s.io", "captclusters", "create"),
    ("infrastructure.cluster.x-k8s.io", "captclusters", "delete"),
    ("cluster.x-k8s.io", "clusters", "patch"),
    ("tf.upbound.io", "workspaces", "update"),
    ("coordination.k8s.io", "leases", "delete"),
    ("rbac.authorization.k8s.io", "roles", "create"),
];

/// Every (group, resource, verb) of `rules`.
pub fn triples(
    rules: &[Rule],
) -> impl Iterator<Item = (&'static str, &'static str, &'static str)> + '_ {
    rules
        .iter()
        .flat_map(|r| r.verbs.iter().map(move |v| (r.group, r.resource, *v)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    const VERBS: &[&str] = &[
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ];

    fn all() -> impl Iterator<Item = &'static Rule> {
        RULES.iter().chain(LEADER_ELECTION_RULES)
    }

    #[test]
    fn one_rule_per_resource_with_sorted_known_verbs() {
        let mut seen = BTreeSet::new();
        for rule in all() {
            assert!(
                seen.insert((rule.group, rule.resource)),
                "{}/{} listed twice",
                rule.group,
                rule.resource
            );
            assert!(!rule.verbs.is_empty(), "{rule:?} has no verbs");
            assert!(
                rule.verbs.windows(2).all(|w| w[0] < w[1]),
                "{rule:?}: verbs must be sorted and unique"
            );
            assert!(
                rule.verbs.iter().all(|v| VERBS.contains(v)),
                "{rule:?}: unknown verb"
            );
        }
    }

    #[test]
    fn status_is_written_through_the_status_subresource() {
        for kind in [
            "captcontrolplanes",
            "captclusters",
            "workspacetemplateapplies",
        ] {
            let status = RULES
                .iter()
                .find(|r| r.resource == format!("{kind}/status"))
                .unwrap_or_else(|| panic!("{kind}/status missing"));
            assert_eq!(status.verbs, ["patch"]);
        }
    }

    #[test]
    fn nothing_is_granted_beyond_what_the_code_does() {
        let granted: BTreeSet<_> = triples(RULES)
            .chain(triples(LEADER_ELECTION_RULES))
            .collect();
        for (group, resource, verb) in FORBIDDEN {
            assert!(
                !granted.contains(&(*group, *resource, *verb)),
                "{verb} {group}/{resource} must not be granted"
            );
        }
        assert!(
            !RULES.iter().any(|r| r.group == "coordination.k8s.io"),
            "leases belong to LEADER_ELECTION_RULES"
        );
        assert!(
            RULES
                .iter()
                .all(|r| !r.verbs.contains(&"*") && r.resource != "*")
        );
    }

    #[test]
    fn only_workspaces_are_cluster_scoped() {
        let cluster: Vec<_> = all()
            .filter(|r| r.cluster_scoped())
            .map(|r| r.resource)
            .collect();
        assert_eq!(cluster, ["workspaces"]);
    }

    /// The chart installs CRDs from its own copy (Helm cannot read files outside the chart).
    #[test]
    fn chart_crds_match_the_generated_crds() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let read_dir = |dir: &Path| -> Vec<(String, String)> {
            let mut files: Vec<_> = std::fs::read_dir(dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
                .map(|p| {
                    (
                        p.file_name().unwrap().to_string_lossy().into_owned(),
                        std::fs::read_to_string(&p).unwrap(),
                    )
                })
                .collect();
            files.sort();
            files
        };
        let generated = read_dir(&root.join("crds"));
        let chart = read_dir(&root.join("config/helm/capt-fargate/files/crds"));
        assert!(!generated.is_empty());
        assert!(
            generated == chart,
            "config/helm/capt-fargate/files/crds is stale; refresh it with \
             `rm config/helm/capt-fargate/files/crds/*.yaml && cp crds/*.yaml config/helm/capt-fargate/files/crds/`"
        );
    }
}
