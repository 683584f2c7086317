use super::*;
use crate::api::conditions::find;
use serde_json::json;

fn at(text: &str) -> Time {
    Time(text.parse().unwrap())
}

fn workspace(conditions: serde_json::Value) -> Workspace {
    serde_json::from_value(json!({
        "apiVersion": "tf.upbound.io/v1beta1", "kind": "Workspace",
        "metadata": { "name": "ws", "generation": 1 },
        "spec": { "forProvider": { "source": "Inline", "module": "" } },
        "status": { "conditions": conditions }
    }))
    .unwrap()
}

fn available() -> serde_json::Value {
    json!([
        { "type": "Ready", "status": "True", "reason": "Available", "lastTransitionTime": "2026-01-01T00:00:00Z" },
        { "type": "Synced", "status": "True", "reason": "ReconcileSuccess", "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1 }
    ])
}

#[test]
fn without_a_workspace_an_apply_is_creating() {
    let now = at("2026-01-02T00:00:00Z");
    let new = build_status(&Default::default(), None, Vec::new(), None, Some(3), &now);
    assert_eq!(new.observed_generation, Some(3));
    assert!(!new.applied);
    assert_eq!(new.workspace_name, None);
    let ready = find(&new.conditions, READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", reason::CREATING)
    );
    assert_eq!(ready.last_transition_time, now);
    assert_eq!(ready.observed_generation, Some(3));
}

#[test]
fn a_workspace_is_mirrored_with_the_controllers_conditions_on_top() {
    let now = at("2026-01-02T00:00:00Z");
    let ws = workspace(available());
    let new = build_status(
        &Default::default(),
        Some(&ws),
        template_found(),
        Some("h1".into()),
        Some(1),
        &now,
    );
    assert_eq!(new.workspace_name.as_deref(), Some("ws"));
    assert!(new.applied);
    assert_eq!(new.last_applied_hash.as_deref(), Some("h1"));
    assert_eq!(new.last_applied_time, Some(now.clone()));
    let types: Vec<(&str, &str)> = new
        .conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(
        types,
        [
            ("Ready", "True"),
            ("Synced", "True"),
            (TEMPLATE_AVAILABLE, "True")
        ]
    );
    // A condition this controller decides replaces the Workspace's of the same type.
    let blocked = blocked_conditions(reason::INVALID_TEMPLATE, "bad".into(), true);
    let new = build_status(&new, Some(&ws), blocked, None, Some(2), &now);
    let synced = find(&new.conditions, SYNCED).unwrap();
    assert_eq!(
        (
            synced.status.as_str(),
            synced.reason.as_str(),
            synced.message.as_deref()
        ),
        ("False", reason::INVALID_TEMPLATE, Some("bad"))
    );
    // The last applied spec is kept while nothing new is applied.
    assert_eq!(new.last_applied_hash.as_deref(), Some("h1"));
}

#[test]
fn recomputing_a_status_changes_nothing() {
    // The steady state: the same inputs later give the same status, so nothing is written.
    let ws = workspace(available());
    let first = build_status(
        &Default::default(),
        Some(&ws),
        template_found(),
        Some("h1".into()),
        Some(1),
        &at("2026-01-02T00:00:00Z"),
    );
    let later = at("2026-01-03T00:00:00Z");
    let again = build_status(
        &first,
        Some(&ws),
        template_found(),
        Some("h1".into()),
        Some(1),
        &later,
    );
    assert_eq!(again, first);
    // A new spec hash is a new application, with its time.
    let changed = build_status(
        &first,
        Some(&ws),
        template_found(),
        Some("h2".into()),
        Some(2),
        &later,
    );
    assert_eq!(changed.last_applied_time, Some(later));
    // The Workspace's name and `applied` stay once known, also while it is not seen.
    let unseen = build_status(
        &first,
        None,
        Vec::new(),
        None,
        Some(1),
        &at("2026-01-04T00:00:00Z"),
    );
    assert_eq!(unseen.workspace_name.as_deref(), Some("ws"));
    assert!(unseen.applied);
}

#[test]
fn blocked_and_waiting_conditions() {
    let without = blocked_conditions(reason::TEMPLATE_NOT_FOUND, "m".into(), false);
    assert_eq!(
        without
            .iter()
            .map(|c| (c.type_, c.status, c.reason.as_str()))
            .collect::<Vec<_>>(),
        [
            (SYNCED, false, reason::TEMPLATE_NOT_FOUND),
            (READY, false, reason::TEMPLATE_NOT_FOUND)
        ]
    );
    assert_eq!(blocked_conditions("X", "m".into(), true).len(), 1);
    let waiting = waiting_conditions(reason::WAITING_FOR_SECRETS, "m".into());
    assert_eq!(
        waiting
            .iter()
            .map(|c| (c.type_, c.status, c.reason.as_str()))
            .collect::<Vec<_>>(),
        [
            (SYNCED, true, reason::RECONCILE_SUCCESS),
            (READY, false, reason::WAITING_FOR_SECRETS)
        ]
    );
    let missing = template_missing("gone".into());
    assert_eq!(
        (
            missing[0].type_,
            missing[0].status,
            missing[0].reason.as_str()
        ),
        (TEMPLATE_AVAILABLE, false, reason::TEMPLATE_NOT_FOUND)
    );
}

#[test]
fn an_event_is_sent_once_per_condition() {
    let apply: WorkspaceTemplateApply = serde_json::from_value(json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "WorkspaceTemplateApply",
        "metadata": { "name": "a", "namespace": "n" },
        "spec": { "templateRef": { "name": "t" } },
        "status": { "conditions": [
            { "type": "Ready", "status": "False", "reason": "WaitingForSecrets", "lastTransitionTime": "2026-01-01T00:00:00Z" }
        ] }
    }))
    .unwrap();
    assert!(has_condition(
        &apply,
        READY,
        false,
        reason::WAITING_FOR_SECRETS
    ));
    assert!(!has_condition(
        &apply,
        READY,
        true,
        reason::WAITING_FOR_SECRETS
    ));
    assert!(!has_condition(
        &apply,
        SYNCED,
        false,
        reason::WAITING_FOR_SECRETS
    ));
}
