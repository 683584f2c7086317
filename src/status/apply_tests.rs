use super::*;
use serde_json::json;

fn workspace(generation: i64, conditions: serde_json::Value) -> Workspace {
    serde_json::from_value(json!({
        "apiVersion": "tf.upbound.io/v1beta1", "kind": "Workspace",
        "metadata": { "name": "ws", "generation": generation },
        "spec": { "forProvider": { "source": "Inline", "module": "" } },
        "status": { "conditions": conditions }
    }))
    .unwrap()
}

fn cond(t: &str, s: &str, r: &str, m: &str, g: i64) -> serde_json::Value {
    json!({ "type": t, "status": s, "reason": r, "message": m, "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": g })
}

#[test]
fn only_more_than_creating_is_news() {
    let creating = workspace(
        1,
        json!([
            cond("Ready", "False", "Creating", "", 1),
            cond("Synced", "True", "ReconcileSuccess", "", 1)
        ]),
    );
    assert!(!workspace_has_news(&creating));
    assert!(!workspace_has_news(&workspace(1, json!([]))), "nothing yet");
    let available = workspace(
        1,
        json!([
            cond("Ready", "True", "Available", "", 1),
            cond("Synced", "True", "ReconcileSuccess", "", 1)
        ]),
    );
    assert!(workspace_has_news(&available));
    let failed = workspace(
        1,
        json!([
            cond("Ready", "False", "Creating", "", 1),
            cond("Synced", "False", "ReconcileError", "apply failed", 1)
        ]),
    );
    assert!(workspace_has_news(&failed), "an error is reported at once");
    let deleting = workspace(1, json!([cond("Ready", "False", "Deleting", "", 1)]));
    assert!(workspace_has_news(&deleting));
}

#[test]
fn the_providers_creating_reads_as_the_wait_before_it() {
    // Before any report, and after the provider's `Creating`: the same conditions, so an
    // apply that reported the first does not write again for the second.
    let before = mirror_workspace(&workspace(1, json!([])));
    let creating = mirror_workspace(&workspace(
        1,
        json!([
            cond("Ready", "False", "Creating", "", 1),
            cond("Synced", "True", "ReconcileSuccess", "", 1)
        ]),
    ));
    assert_eq!(before, creating);
    assert_eq!(
        creating[1].message,
        "waiting for provider-terraform to apply Workspace ws"
    );
}

#[test]
fn creating_is_not_a_failure() {
    let ws = workspace(
        1,
        json!([
            cond("Ready", "False", "Creating", "", 1),
            cond("Synced", "True", "ReconcileSuccess", "", 1)
        ]),
    );
    let m = mirror_workspace(&ws);
    assert!(m[0].status);
    assert_eq!((m[1].status, m[1].reason.as_str()), (false, "Creating"));
}

#[test]
fn terraform_errors_come_from_synced() {
    let ws = workspace(
        1,
        json!([cond(
            "Synced",
            "False",
            "ReconcileError",
            "apply failed: boom",
            1
        )]),
    );
    let m = mirror_workspace(&ws);
    assert_eq!(
        (m[0].status, m[0].reason.as_str(), m[0].message.as_str()),
        (false, "ReconcileError", "apply failed: boom")
    );
    assert!(!m[1].status);
}

/// A condition as crossplane-runtime v2 writes `Ready=True/Available`: without
/// `observedGeneration`.
fn available() -> serde_json::Value {
    json!({ "type": "Ready", "status": "True", "reason": "Available", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z" })
}

#[test]
fn ready_counts_once_synced_is_for_the_current_generation() {
    // A Workspace changed to generation 2 keeps the Ready=True of generation 1 while
    // provider-terraform has not applied it: Synced still carries generation 1.
    let ws = workspace(
        2,
        json!([
            available(),
            cond("Synced", "True", "ReconcileSuccess", "", 1)
        ]),
    );
    assert!(!workspace_applied(&ws));
    let m = mirror_workspace(&ws);
    assert_eq!(
        (m[1].status, m[1].reason.as_str(), m[1].message.as_str()),
        (
            false,
            reason::APPLYING,
            "waiting for provider-terraform to apply generation 2 of Workspace ws"
        )
    );
    // After the synchronous terraform apply, Synced=True is written for generation 2.
    let ws = workspace(
        2,
        json!([
            available(),
            cond("Synced", "True", "ReconcileSuccess", "", 2)
        ]),
    );
    assert!(workspace_applied(&ws));
    assert_eq!(
        (
            mirror_workspace(&ws)[1].status,
            mirror_workspace(&ws)[1].reason.as_str()
        ),
        (true, "Available")
    );
    // A failed update of generation 2 leaves Ready=True as it was: not applied.
    let ws = workspace(
        2,
        json!([
            available(),
            cond(
                "Synced",
                "False",
                "ReconcileError",
                "update failed: boom",
                2
            )
        ]),
    );
    assert!(!workspace_applied(&ws));
    let m = mirror_workspace(&ws);
    assert_eq!(
        (m[0].status, m[0].message.as_str()),
        (false, "update failed: boom")
    );
    assert_eq!(
        (m[1].status, m[1].reason.as_str()),
        (false, reason::APPLYING)
    );
    // The first apply ends with Creating for the current generation, then Available.
    let ws = workspace(
        1,
        json!([
            cond("Ready", "False", "Creating", "", 1),
            cond("Synced", "True", "ReconcileSuccess", "", 1)
        ]),
    );
    assert_eq!(mirror_workspace(&ws)[1].reason, "Creating");
    // An older crossplane-runtime without observedGeneration: taken as current.
    let ws = workspace(
        3,
        json!([
            available(),
            json!({ "type": "Synced", "status": "True", "reason": "ReconcileSuccess", "lastTransitionTime": "2026-01-01T00:00:00Z" })
        ]),
    );
    assert!(workspace_applied(&ws));
    // Ready=True without Synced is not enough.
    assert!(!workspace_applied(&workspace(1, json!([available()]))));
}

fn apply(
    generation: i64,
    observed: Option<i64>,
    conditions: serde_json::Value,
) -> WorkspaceTemplateApply {
    serde_json::from_value(json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "WorkspaceTemplateApply",
        "metadata": { "name": "a", "namespace": "n", "generation": generation },
        "spec": { "templateRef": { "name": "t" } },
        "status": { "observedGeneration": observed, "conditions": conditions }
    }))
    .unwrap()
}

#[test]
fn child_states() {
    let ready = apply(
        1,
        Some(1),
        json!([
            cond("Ready", "True", "Available", "", 1),
            cond("Synced", "True", "ReconcileSuccess", "", 1)
        ]),
    );
    assert_eq!(child_state(&ready), ChildState::Ready);
    let stale = apply(
        2,
        Some(1),
        json!([cond("Ready", "True", "Available", "", 1)]),
    );
    assert!(matches!(child_state(&stale), ChildState::Creating { .. }));
    let failed = apply(
        1,
        Some(1),
        json!([cond(
            "Synced",
            "False",
            "ReconcileError",
            "ResourceLimitExceeded",
            1
        )]),
    );
    assert_eq!(
        child_state(&failed),
        ChildState::Failed {
            reason: "ReconcileError".into(),
            message: "ResourceLimitExceeded".into()
        }
    );
    let waiting = apply(
        1,
        Some(1),
        json!([cond("Ready", "False", "WaitingForSecrets", "missing x", 1)]),
    );
    assert_eq!(
        child_state(&waiting),
        ChildState::Creating {
            reason: "WaitingForSecrets".into(),
            message: "missing x".into()
        }
    );
    let mut deleting = ready.clone();
    deleting.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
    );
    assert_eq!(child_state(&deleting), ChildState::Deleting(None));
}

#[test]
fn a_paused_workspace_is_neither_a_failure_nor_in_flight() {
    // crossplane-runtime's paused reconcile: Synced=False/ReconcilePaused, no message,
    // Ready as it was.
    let mut ws = workspace(
        1,
        json!([
            available(),
            cond("Synced", "False", "ReconcilePaused", "", 1)
        ]),
    );
    // Unpaused, the condition stays until the provider's next reconcile ends: the Workspace
    // may be applying then, which is in flight.
    let stale = mirror_workspace(&ws);
    let ready = stale.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.reason, reason::APPLYING);
    ws.metadata.annotations = Some(
        [("crossplane.io/paused".to_string(), "true".to_string())]
            .into_iter()
            .collect(),
    );
    let mirrored = mirror_workspace(&ws);
    let find = |t: &str| mirrored.iter().find(|c| c.type_ == t).unwrap();
    assert_eq!(find("Synced").reason, reason::RECONCILE_PAUSED);
    let ready = find("Ready");
    assert!(!ready.status && ready.reason == reason::RECONCILE_PAUSED);
    assert!(
        ready.message.contains("crossplane.io/paused"),
        "{}",
        ready.message
    );
    // The apply that mirrors it: not Failed (it was terminal before), not in flight.
    let paused = apply(
        1,
        Some(1),
        json!([
            cond("Synced", "False", "ReconcilePaused", "", 1),
            cond("Ready", "False", "ReconcilePaused", &ready.message, 1)
        ]),
    );
    let state = child_state(&paused);
    assert!(
        matches!(&state, ChildState::Creating { reason, .. } if reason == reason::RECONCILE_PAUSED),
        "{state:?}"
    );
    assert!(!state.in_flight());
    assert_eq!(transient_until(&paused), None);
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

#[test]
fn a_transient_error_is_retried_until_the_limit() {
    let throttled = apply(
        1,
        Some(1),
        json!([
            cond("Ready", "False", "Creating", "", 1),
            cond(
                "Synced",
                "False",
                "ReconcileError",
                "ThrottlingException: Rate exceeded",
                1
            )
        ]),
    );
    let state = child_state_at(&throttled, at("2026-01-01T00:01:00Z"));
    let ChildState::Creating { reason, message } = &state else {
        panic!("{state:?}");
    };
    assert_eq!(reason, failure::TRANSIENT_ERROR);
    assert!(
        message.starts_with("ThrottlingException: Rate exceeded (a transient error"),
        "{message}"
    );
    assert!(message.contains("2026-01-01T00:30:00Z"), "{message}");
    assert!(state.in_flight());
    assert_eq!(
        transient_until(&throttled),
        Some(at("2026-01-01T00:30:00Z"))
    );
    assert_eq!(
        child_state_at(&throttled, at("2026-01-01T00:30:00Z")),
        ChildState::Failed {
            reason: "ReconcileError".into(),
            message: "ThrottlingException: Rate exceeded".into()
        },
        "the same error past the limit needs a person"
    );
    let denied = apply(
        1,
        Some(1),
        json!([cond(
            "Synced",
            "False",
            "ReconcileError",
            "AccessDeniedException",
            1
        )]),
    );
    assert!(matches!(
        child_state_at(&denied, at("2026-01-01T00:00:01Z")),
        ChildState::Failed { .. }
    ));
    assert_eq!(transient_until(&denied), None);
}

#[test]
fn a_failing_destroy_is_reported_while_deleting() {
    let mut denied = apply(
        2,
        Some(2),
        json!([cond(
            "Synced",
            "False",
            "ReconcileError",
            "delete failed: AccessDeniedException",
            2
        )]),
    );
    denied.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at("2026-01-01T00:00:00Z")),
    );
    assert_eq!(
        child_state_at(&denied, at("2026-01-01T00:01:00Z")),
        ChildState::Deleting(Some(DeleteError {
            reason: "ReconcileError".into(),
            message: "delete failed: AccessDeniedException".into(),
            terminal: true
        }))
    );
    let mut busy = denied.clone();
    busy.status.as_mut().unwrap().conditions = serde_json::from_value(json!([cond(
        "Synced",
        "False",
        "ReconcileError",
        "ResourceInUseException",
        2
    )]))
    .unwrap();
    let ChildState::Deleting(Some(e)) = child_state_at(&busy, at("2026-01-01T00:01:00Z")) else {
        panic!("not deleting");
    };
    assert!(!e.terminal);
}

#[test]
fn what_is_in_flight() {
    let creating = |reason: &str| ChildState::Creating {
        reason: reason.into(),
        message: String::new(),
    };
    assert!(creating(reason::CREATING).in_flight());
    assert!(creating("Deleting").in_flight());
    assert!(!creating(reason::WAITING_FOR_SECRETS).in_flight());
    assert!(!creating(reason::WAITING_FOR_WORKSPACES).in_flight());
    assert!(ChildState::Deleting(None).in_flight());
    assert!(!ChildState::Ready.in_flight());
    assert!(
        !ChildState::Failed {
            reason: "ReconcileError".into(),
            message: "AccessDenied".into()
        }
        .in_flight()
    );
}
