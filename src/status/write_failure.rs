//! A profile apply that cannot be written (its name taken by an object this operator did not
//! create, the write forbidden or invalid) is reported in that profile's status entry, and
//! through it in the `FargateProfileFailed` condition and a Warning event, instead of only in
//! the operator's log. Errors that heal by themselves (a stale read, a timeout, an overloaded
//! API server) are not reported here: the reconcile fails and is retried.

use super::reason;
use crate::api::{FargateProfilePhase, FargateProfileStatus};
use crate::error::Error;

/// The status entry of profile `profile` when writing its apply `apply` failed with `error`,
/// or None when the error is transient and the write is simply retried. The entry is `Failed`:
/// each of these needs a person (remove or rename the other object, grant the permission, fix
/// the input), and the profiles after it wait, as after any failed profile.
pub fn profile_status(profile: &str, apply: &str, error: &Error) -> Option<FargateProfileStatus> {
    let (reason, message) = match error {
        Error::NotOwned { .. } => (reason::APPLY_NAME_CONFLICT, error.to_string()),
        Error::Kube(kube::Error::Api(status)) => match status.code {
            // AlreadyExists; a 409 Conflict is a stale resourceVersion, retried.
            409 if status.is_already_exists() => (
                reason::APPLY_NAME_CONFLICT,
                format!(
                    "WorkspaceTemplateApply {apply} already exists and could not be read as this control plane's: {}",
                    status.message
                ),
            ),
            403 => (
                reason::FORBIDDEN,
                format!(
                    "the operator may not write WorkspaceTemplateApply {apply}: {}; grant its service account create and patch on workspacetemplateapplies (see the Helm chart's RBAC)",
                    status.message
                ),
            ),
            422 => (
                reason::INVALID,
                format!(
                    "the API server rejected WorkspaceTemplateApply {apply}: {}",
                    status.message
                ),
            ),
            _ => return None,
        },
        _ => return None,
    };
    Some(FargateProfileStatus {
        name: profile.to_string(),
        ready: false,
        workspace_template_apply_name: Some(apply.to_string()),
        phase: Some(FargateProfilePhase::Failed),
        failure_reason: Some(reason.to_string()),
        failure_message: Some(message),
    })
}

/// Replaces the entries of `statuses` that `failures` name (by profile name).
pub fn apply_overrides(statuses: &mut [FargateProfileStatus], failures: Vec<FargateProfileStatus>) {
    for failure in failures {
        if let Some(entry) = statuses.iter_mut().find(|s| s.name == failure.name) {
            *entry = failure;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn api_error(code: u16, reason: &str, message: &str) -> Error {
        let status: kube::core::Status = serde_json::from_value(json!({
            "status": "Failure", "code": code, "reason": reason, "message": message
        }))
        .unwrap();
        Error::Kube(kube::Error::Api(status.into()))
    }

    #[test]
    fn a_name_taken_by_another_object_is_a_conflict_naming_both() {
        let error = Error::NotOwned {
            kind: "WorkspaceTemplateApply".into(),
            name: "shop-fargate-api-1234abcd".into(),
            holder: "controlled by CAPTControlPlane other".into(),
        };
        let s = profile_status("api", "shop-fargate-api-1234abcd", &error).unwrap();
        assert_eq!(s.phase, Some(FargateProfilePhase::Failed));
        assert!(!s.ready);
        assert_eq!(
            s.failure_reason.as_deref(),
            Some(reason::APPLY_NAME_CONFLICT)
        );
        let message = s.failure_message.unwrap();
        assert!(
            message.contains("shop-fargate-api-1234abcd")
                && message.contains("CAPTControlPlane other")
                && message.contains("left untouched"),
            "{message}"
        );
        assert_eq!(
            s.workspace_template_apply_name.as_deref(),
            Some("shop-fargate-api-1234abcd")
        );
    }

    #[test]
    fn forbidden_and_invalid_carry_the_api_servers_message() {
        let s = profile_status(
            "api",
            "a",
            &api_error(403, "Forbidden", "user cannot create resource"),
        )
        .unwrap();
        assert_eq!(s.failure_reason.as_deref(), Some(reason::FORBIDDEN));
        assert!(
            s.failure_message
                .unwrap()
                .contains("user cannot create resource")
        );
        let s = profile_status(
            "api",
            "a",
            &api_error(422, "Invalid", "spec.x: Invalid value"),
        )
        .unwrap();
        assert_eq!(s.failure_reason.as_deref(), Some(reason::INVALID));
        assert!(s.failure_message.unwrap().contains("spec.x: Invalid value"));
        let s = profile_status("api", "a", &api_error(409, "AlreadyExists", "exists")).unwrap();
        assert_eq!(
            s.failure_reason.as_deref(),
            Some(reason::APPLY_NAME_CONFLICT)
        );
    }

    #[test]
    fn transient_errors_are_retried_not_reported() {
        for (code, reason) in [
            (409, "Conflict"),
            (500, "InternalError"),
            (429, "TooManyRequests"),
            (504, "Timeout"),
        ] {
            assert_eq!(
                profile_status("api", "a", &api_error(code, reason, "x")),
                None
            );
        }
        assert_eq!(
            profile_status("api", "a", &Error::MissingMetadata("x".into())),
            None
        );
    }

    #[test]
    fn overrides_replace_only_the_named_entries() {
        let entry = |name: &str, phase| FargateProfileStatus {
            name: name.into(),
            phase: Some(phase),
            ..Default::default()
        };
        let mut statuses = vec![
            entry("a", FargateProfilePhase::Ready),
            entry("b", FargateProfilePhase::Creating),
        ];
        apply_overrides(&mut statuses, vec![entry("b", FargateProfilePhase::Failed)]);
        assert_eq!(statuses[0].phase, Some(FargateProfilePhase::Ready));
        assert_eq!(statuses[1].phase, Some(FargateProfilePhase::Failed));
    }
}
