//! Which Kubernetes Events a control-plane status change deserves.
//!
//! Events are for what a user acts on or looks for in `kubectl describe`: a profile that
//! failed or is being deleted, and the moment every profile is ready. A profile being created or
//! becoming ready on its own is already in the status; announcing each would double the requests
//! of a large rollout (measured by `tests/bench`) without telling anyone more.

use super::profiles::same_profiles;
use super::reason;
use crate::api::{FargateProfilePhase, FargateProfileStatus};

// Reasons of the events the controllers publish about their own steps (one home for every
// Event reason, as `status::reason` is for condition reasons).

/// The control plane created its EKS cluster's apply.
pub const CREATED_CLUSTER_WORKSPACE: &str = "CreatedClusterWorkspace";
/// A CAPTCluster created its VPC's apply.
pub const CREATED_VPC_WORKSPACE: &str = "CreatedVPCWorkspace";
/// The control plane deletes its EKS cluster's apply (teardown).
pub const DELETING_CLUSTER_WORKSPACE: &str = "DeletingClusterWorkspace";
/// A CAPTCluster deletes its VPC's apply (teardown).
pub const DELETING_VPC_WORKSPACE: &str = "DeletingVPCWorkspace";
/// An apply deletes its Workspace (Terraform destroys it).
pub const DELETING_WORKSPACE: &str = "DeletingWorkspace";
/// A kubeconfig Secret was written for a reason people would want to know.
pub const KUBECONFIG_WRITTEN: &str = "KubeconfigWritten";
/// A paused apply paused its Workspace in provider-terraform (`crossplane.io/paused`).
pub const PAUSED_WORKSPACE: &str = "PausedWorkspace";
/// A CAPTCluster left its VPC in place (retained).
pub const RETAINED_VPC: &str = "RetainedVPC";
/// A deleted apply left its Workspace in place (`retainWorkspaceOnDelete`).
pub const RETAINED_WORKSPACE: &str = "RetainedWorkspace";
/// The control plane's endpoint was set or changed.
pub const CONTROL_PLANE_ENDPOINT_SET: &str = "ControlPlaneEndpointSet";

/// Reason of the event published when every Fargate profile of a control plane is ready.
pub const ALL_READY: &str = "FargateProfilesReady";

/// One event to publish about a control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// A warning (true) or a normal event.
    pub warning: bool,
    /// The event's reason (CamelCase, e.g. `FargateProfileFailed`).
    pub reason: &'static str,
    /// The human-readable note.
    pub note: String,
    /// The profile's apply, when the event is about one profile: each profile's events then
    /// form their own series.
    pub apply: Option<String>,
}

/// The events for a status that went from `old` to `new` profile statuses.
pub fn notices(old: &[FargateProfileStatus], new: &[FargateProfileStatus]) -> Vec<Notice> {
    let mut out = Vec::new();
    // A destroy that needs a person is announced as a warning, though the phase stays Deleting.
    let delete_failed = |s: &FargateProfileStatus| {
        s.phase == Some(FargateProfilePhase::Deleting)
            && s.failure_reason.as_deref() == Some(reason::DELETE_FAILED)
    };
    for s in new {
        let before = old
            .iter()
            .find(|o| o.name == s.name)
            .map(|o| (o.phase, delete_failed(o)));
        if before == Some((s.phase, delete_failed(s))) {
            continue;
        }
        let (warning, reason) = match s.phase {
            Some(FargateProfilePhase::Failed) => (true, "FargateProfileFailed"),
            Some(FargateProfilePhase::Deleting) if delete_failed(s) => {
                (true, "FargateProfileDeleteFailed")
            }
            // Deleting announced once, not again when its destroy recovers from a failure.
            Some(FargateProfilePhase::Deleting)
                if before.is_some_and(|(phase, _)| phase == s.phase) =>
            {
                continue;
            }
            Some(FargateProfilePhase::Deleting) => (false, "FargateProfileDeleting"),
            _ => continue,
        };
        let detail = s
            .failure_message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        let phase = s.phase.map(|p| format!("{p:?}")).unwrap_or_default();
        out.push(Notice {
            warning,
            reason,
            note: format!("Fargate profile {} is {phase}{detail}", s.name),
            apply: s.workspace_template_apply_name.clone(),
        });
    }
    let all_ready = |list: &[FargateProfileStatus]| list.iter().all(|s| s.ready);
    if !new.is_empty() && all_ready(new) && !(same_profiles(old, new) && all_ready(old)) {
        let names: Vec<&str> = new.iter().map(|s| s.name.as_str()).collect();
        out.push(Notice {
            warning: false,
            reason: ALL_READY,
            note: format!(
                "all {} Fargate profiles are ready: {}",
                new.len(),
                names.join(", ")
            ),
            apply: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use FargateProfilePhase::*;

    fn profile(name: &str, phase: FargateProfilePhase) -> FargateProfileStatus {
        FargateProfileStatus {
            name: name.into(),
            ready: phase == Ready,
            workspace_template_apply_name: Some(format!("cp-{name}")),
            phase: Some(phase),
            failure_reason: None,
            failure_message: (phase == Failed).then(|| "quota exceeded".to_string()),
        }
    }

    fn reasons(n: &[Notice]) -> Vec<&str> {
        n.iter().map(|n| n.reason).collect()
    }

    #[test]
    fn a_single_profile_becoming_ready_is_left_to_the_status() {
        let old = [
            profile("a", Ready),
            profile("b", Creating),
            profile("c", Pending),
        ];
        let new = [
            profile("a", Ready),
            profile("b", Ready),
            profile("c", Creating),
        ];
        assert!(notices(&old, &new).is_empty());
    }

    #[test]
    fn the_last_profile_ready_is_announced_once() {
        let old = [profile("a", Ready), profile("b", Creating)];
        let new = [profile("a", Ready), profile("b", Ready)];
        let n = notices(&old, &new);
        assert_eq!(reasons(&n), [ALL_READY]);
        assert_eq!(n[0].note, "all 2 Fargate profiles are ready: a, b");
        assert_eq!(n[0].apply, None);
        assert!(!n[0].warning);
        assert!(
            notices(&new, &new).is_empty(),
            "no repeat while nothing changes"
        );
    }

    #[test]
    fn a_profile_added_to_a_ready_set_is_announced_when_it_is_ready() {
        let old = [profile("a", Ready)];
        let new = [profile("a", Ready), profile("b", Ready)];
        assert_eq!(reasons(&notices(&old, &new)), [ALL_READY]);
        let removed = [profile("a", Ready)];
        assert_eq!(
            reasons(&notices(&new, &removed)),
            [ALL_READY],
            "a different set of profiles"
        );
    }

    #[test]
    fn failures_and_deletions_are_announced_per_profile() {
        let old = [profile("a", Creating), profile("b", Ready)];
        let new = [profile("a", Failed), profile("b", Deleting)];
        let n = notices(&old, &new);
        assert_eq!(
            reasons(&n),
            ["FargateProfileFailed", "FargateProfileDeleting"]
        );
        assert!(n[0].warning);
        assert_eq!(n[0].note, "Fargate profile a is Failed: quota exceeded");
        assert_eq!(n[0].apply.as_deref(), Some("cp-a"));
        assert_eq!(n[1].note, "Fargate profile b is Deleting");
        assert!(
            notices(&new, &new).is_empty(),
            "no repeat of the same phase"
        );
    }

    #[test]
    fn a_failing_destroy_is_a_warning_about_its_profile() {
        let deleting = profile("b", Deleting);
        let mut denied = profile("b", Deleting);
        denied.failure_reason = Some(reason::DELETE_FAILED.into());
        denied.failure_message = Some("AccessDeniedException".into());
        let n = notices(
            std::slice::from_ref(&deleting),
            std::slice::from_ref(&denied),
        );
        assert_eq!(reasons(&n), ["FargateProfileDeleteFailed"]);
        assert!(n[0].warning);
        assert_eq!(n[0].apply.as_deref(), Some("cp-b"));
        assert!(n[0].note.contains("AccessDeniedException"), "{}", n[0].note);
        assert!(notices(std::slice::from_ref(&denied), std::slice::from_ref(&denied)).is_empty());
        assert!(
            notices(&[denied], &[deleting]).is_empty(),
            "recovering is not a new deletion"
        );
    }

    #[test]
    fn no_profiles_means_nothing_to_announce() {
        assert!(notices(&[], &[]).is_empty());
    }
}
