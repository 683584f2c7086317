use super::*;
use crate::controller::workspace_apply::handover::{
    HandOver, hand_over_step as hand_over, paused_for_cluster,
};
use serde_json::{Value, json};

const UID: &str = "uid-a";

fn apply(extra: Value) -> WorkspaceTemplateApply {
    let mut value = json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "WorkspaceTemplateApply",
        "metadata": { "name": "a", "namespace": "n", "uid": UID, "generation": 2 },
        "spec": { "templateRef": { "name": "t" } }
    });
    merge(&mut value, extra);
    serde_json::from_value(value).unwrap()
}

fn workspace(owner_uid: &str, extra: Value) -> Workspace {
    let mut value = json!({
        "apiVersion": "tf.upbound.io/v1beta1", "kind": "Workspace",
        "metadata": {
            "name": "ws", "generation": 1,
            "labels": { (names::LABEL_APPLY_UID): owner_uid },
            "annotations": { (names::ANNOTATION_APPLY): "n/other" }
        },
        "spec": { "forProvider": { "source": "Inline", "module": "" } }
    });
    merge(&mut value, extra);
    serde_json::from_value(value).unwrap()
}

/// `patch` merged into `target` (RFC 7386).
fn merge(target: &mut Value, patch: Value) {
    let Value::Object(patch) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let map = target.as_object_mut().unwrap();
    for (k, v) in &patch {
        if v.is_null() {
            map.remove(k);
        } else {
            merge(map.entry(k.clone()).or_insert(Value::Null), v.clone());
        }
    }
}

fn deleting() -> Value {
    json!({ "metadata": { "deletionTimestamp": "2026-01-01T00:00:00Z" } })
}

fn reported_status() -> Value {
    json!({ "status": { "observedGeneration": 2, "conditions": [
        { "type": "Ready", "status": "False", "reason": "Creating", "lastTransitionTime": "2026-01-01T00:00:00Z" }
    ] } })
}

fn observed<'a>(
    apply: &'a WorkspaceTemplateApply,
    existing: Option<&'a Workspace>,
) -> Observed<'a> {
    Observed {
        apply,
        ws_name: "ws",
        existing,
        workspace_age: Some(Duration::from_secs(60)),
        desired: None,
        prerequisites: None,
    }
}

fn rendered(held: Option<&str>) -> Option<Desired> {
    Some(Desired::Rendered {
        workspace: Box::new(workspace(UID, json!({}))),
        held: held.map(String::from),
    })
}

fn ready() -> Option<Prerequisites> {
    Some(Prerequisites::default())
}

#[test]
fn a_deleted_apply_destroys_its_workspace_before_it_goes() {
    let gone = apply(deleting());
    assert!(matches!(decide(&observed(&gone, None)), Step::Release));
    let ws = workspace(UID, json!({}));
    assert!(matches!(
        decide(&observed(&gone, Some(&ws))),
        Step::DeleteWorkspace
    ));
    let terminating = workspace(UID, deleting());
    assert!(matches!(
        decide(&observed(&gone, Some(&terminating))),
        Step::AwaitDeletion
    ));
    // Someone else's Workspace under the name is not touched.
    let foreign = workspace("uid-b", json!({}));
    assert!(matches!(
        decide(&observed(&gone, Some(&foreign))),
        Step::Release
    ));
    let retained = apply(json!({
        "metadata": { "deletionTimestamp": "2026-01-01T00:00:00Z" },
        "spec": { "retainWorkspaceOnDelete": true }
    }));
    assert!(matches!(
        decide(&observed(&retained, Some(&ws))),
        Step::Retain
    ));
}

#[test]
fn a_name_taken_by_another_workspace_blocks_before_anything_is_read() {
    let a = apply(json!({}));
    let foreign = workspace("uid-b", json!({}));
    let Step::Blocked { reason, message } = decide(&observed(&a, Some(&foreign))) else {
        panic!("not blocked");
    };
    assert_eq!(reason, reason::WORKSPACE_CONFLICT);
    assert_eq!(
        message,
        "Workspace ws already belongs to WorkspaceTemplateApply n/other"
    );
    let mut unknown = foreign.clone();
    unknown.metadata.annotations = None;
    let Step::Blocked { message, .. } = decide(&observed(&a, Some(&unknown))) else {
        panic!("not blocked");
    };
    assert!(
        message.contains("was not created by this operator"),
        "{message}"
    );
}

#[test]
fn the_template_is_read_only_when_needed_and_its_absence_reported() {
    let a = apply(json!({}));
    assert!(matches!(
        decide(&observed(&a, None)),
        Step::Look(Lookup::Desired)
    ));
    let mut o = observed(&a, None);
    o.desired = Some(Desired::NoTemplate);
    let Step::Blocked { reason, message } = decide(&o) else {
        panic!("not blocked");
    };
    assert_eq!(
        (reason, message.as_str()),
        (
            reason::TEMPLATE_NOT_FOUND,
            "WorkspaceTemplate n/t not found; create it or fix spec.templateRef"
        )
    );
    // Once applied (a Workspace and status for this generation), the template's absence
    // only freezes the Workspace.
    let applied = apply(reported_status());
    let ws = workspace(UID, json!({}));
    let mut o = observed(&applied, Some(&ws));
    o.desired = Some(Desired::NoTemplate);
    assert!(matches!(decide(&o), Step::TemplateGone { .. }));
    // Status of an older generation: the change cannot be applied, which blocks.
    let stale = apply(json!({ "status": { "observedGeneration": 1 } }));
    let mut o = observed(&stale, Some(&ws));
    o.desired = Some(Desired::NoTemplate);
    assert!(matches!(decide(&o), Step::Blocked { .. }));
    let mut o = observed(&a, None);
    o.desired = Some(Desired::Invalid("no variable sets ${x}".into()));
    let Step::Blocked { reason, message } = decide(&o) else {
        panic!("not blocked");
    };
    assert_eq!(
        (reason, message.as_str()),
        (reason::INVALID_TEMPLATE, "no variable sets ${x}")
    );
}

#[test]
fn a_previous_workspace_being_destroyed_is_awaited() {
    let a = apply(json!({}));
    let terminating = workspace(UID, deleting());
    let mut o = observed(&a, Some(&terminating));
    o.desired = rendered(None);
    let Step::Wait { reason, message } = decide(&o) else {
        panic!("not waiting");
    };
    assert_eq!(
        (reason, message.as_str()),
        (
            reason::CREATING,
            "waiting for the previous Workspace ws to be deleted"
        )
    );
}

#[test]
fn a_workspace_that_holds_the_desired_spec_is_reported_without_reading_secrets() {
    let a = apply(reported_status());
    let ws = workspace(UID, json!({}));
    let mut o = observed(&a, Some(&ws));
    o.desired = rendered(Some("hash"));
    let step = decide(&o);
    let Step::Report { applied } = step else {
        panic!("{step:?}");
    };
    assert_eq!(applied.as_deref(), Some("hash"));
}

#[test]
fn a_new_workspace_waits_for_the_providers_first_report() {
    // Neither the apply nor its 2 s old Workspace has conditions yet.
    let a = apply(json!({}));
    let ws = workspace(UID, json!({}));
    let mut o = observed(&a, Some(&ws));
    o.desired = rendered(Some("hash"));
    o.workspace_age = Some(Duration::from_secs(2));
    let step = decide(&o);
    let Step::AwaitFirstReport(wait) = step else {
        panic!("{step:?}");
    };
    assert_eq!(wait, pacing::FIRST_REPORT_GRACE - Duration::from_secs(2));
    // Past the grace, or once the provider reported news (more than provider-terraform's
    // `Synced=True` with `Ready=False/Creating`, which is what the wait already says), it is
    // reported.
    o.workspace_age = Some(pacing::FIRST_REPORT_GRACE);
    assert!(matches!(decide(&o), Step::Report { .. }));
    let creating = workspace(
        UID,
        json!({ "status": { "conditions": [
            { "type": "Synced", "status": "True", "reason": "ReconcileSuccess", "lastTransitionTime": "2026-01-01T00:00:00Z" },
            { "type": "Ready", "status": "False", "reason": "Creating", "lastTransitionTime": "2026-01-01T00:00:00Z" }
        ] } }),
    );
    let mut o = observed(&a, Some(&creating));
    o.desired = rendered(Some("hash"));
    o.workspace_age = Some(Duration::from_secs(2));
    assert!(matches!(decide(&o), Step::AwaitFirstReport(_)));
    let reported = workspace(
        UID,
        json!({ "status": { "conditions": [
            { "type": "Synced", "status": "True", "reason": "ReconcileSuccess", "lastTransitionTime": "2026-01-01T00:00:00Z" },
            { "type": "Ready", "status": "True", "reason": "Available", "lastTransitionTime": "2026-01-01T00:00:00Z" }
        ] } }),
    );
    let mut o = observed(&a, Some(&reported));
    o.desired = rendered(Some("hash"));
    o.workspace_age = Some(Duration::from_secs(2));
    assert!(matches!(decide(&o), Step::Report { .. }));
}

#[test]
fn a_write_waits_for_its_secrets_and_workspaces() {
    let a = apply(json!({}));
    let mut o = observed(&a, None);
    o.desired = rendered(None);
    assert!(matches!(decide(&o), Step::Look(Lookup::Prerequisites)));
    o.prerequisites = Some(Prerequisites {
        missing_secrets: Some("waiting for secret n/s does not exist".into()),
        unready_workspaces: Some("waiting for Workspaces to be Ready: vpc".into()),
    });
    let Step::Wait { reason, message } = decide(&o) else {
        panic!("not waiting");
    };
    assert_eq!(
        (reason, message.as_str()),
        (
            reason::WAITING_FOR_SECRETS,
            "waiting for secret n/s does not exist"
        )
    );
    o.prerequisites.as_mut().unwrap().missing_secrets = None;
    let Step::Wait { reason, .. } = decide(&o) else {
        panic!("not waiting");
    };
    assert_eq!(reason, reason::WAITING_FOR_WORKSPACES);
    // An existing Workspace is kept and reported while a secret is missing, and updated
    // whether or not the Workspaces it waited for are still Ready.
    let ws = workspace(UID, json!({}));
    let mut o = observed(&a, Some(&ws));
    o.desired = rendered(None);
    o.prerequisites = Some(Prerequisites {
        missing_secrets: Some("waiting for secret n/s does not exist".into()),
        unready_workspaces: None,
    });
    assert!(matches!(decide(&o), Step::Report { applied: None }));
    o.prerequisites = Some(Prerequisites {
        missing_secrets: None,
        unready_workspaces: Some("waiting for Workspaces to be Ready: vpc".into()),
    });
    assert!(matches!(decide(&o), Step::Write { create: false, .. }));
}

#[test]
fn a_missing_or_changed_workspace_is_written() {
    let a = apply(json!({}));
    let mut o = observed(&a, None);
    o.desired = rendered(None);
    o.prerequisites = ready();
    let Step::Write {
        workspace: desired,
        create,
    } = decide(&o)
    else {
        panic!("not a write");
    };
    assert!(create);
    assert_eq!(desired.labels()[names::LABEL_APPLY_UID], UID);
    let ws = workspace(UID, json!({}));
    let mut o = observed(&a, Some(&ws));
    o.desired = rendered(None);
    o.prerequisites = ready();
    assert!(matches!(decide(&o), Step::Write { create: false, .. }));
}
#[test]
fn a_paused_apply_pauses_its_workspace_then_unblocks_the_move_once_the_provider_confirms() {
    let deleting =
        json!({ "metadata": { "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["f"] } });
    let blocked = json!({ "metadata": { "annotations": { (names::BLOCK_MOVE_ANNOTATION): "" } } });
    let a = apply(blocked.clone());
    let paused = json!({ "metadata": { "annotations": {
        (names::CROSSPLANE_PAUSED_ANNOTATION): "true",
        (names::WORKSPACE_PAUSED_ANNOTATION): "",
    } } });
    let synced = |status: &str, reason: &str| {
        json!({ "status": { "conditions": [
            { "type": "Ready", "status": "True", "reason": "Available",
              "lastTransitionTime": "2026-01-01T00:00:00Z" },
            { "type": "Synced", "status": status, "reason": reason,
              "lastTransitionTime": "2026-01-01T00:00:00Z" },
        ] } })
    };
    // Its own running Workspace is paused (not deleted), and the apply marked ...
    let ws = workspace(UID, synced("True", "ReconcileSuccess"));
    assert_eq!(hand_over(&a, Some(&ws)), HandOver::Pause);
    let released = json!({ "metadata": { "annotations": { (names::RELEASED_ANNOTATION): "ws" } } });
    let mut marked = blocked.clone();
    merge(&mut marked, released.clone());
    let a = apply(marked);
    // ... and the move waits until provider-terraform says it is paused.
    let mut asked = paused.clone();
    merge(&mut asked, synced("True", "ReconcileSuccess"));
    assert_eq!(
        hand_over(&a, Some(&workspace(UID, asked))),
        HandOver::AwaitPause
    );
    let mut confirmed = paused.clone();
    merge(&mut confirmed, synced("False", reason::RECONCILE_PAUSED));
    let confirmed = workspace(UID, confirmed);
    assert_eq!(hand_over(&a, Some(&confirmed)), HandOver::Unblock);
    // Paused by hand (no mark of ours): kept as it is, and once confirmed the move goes on.
    let mut by_hand =
        json!({ "metadata": { "annotations": { (names::CROSSPLANE_PAUSED_ANNOTATION): "true" } } });
    merge(&mut by_hand, synced("False", reason::RECONCILE_PAUSED));
    let by_hand = workspace(UID, by_hand);
    assert!(!paused_for_cluster(&by_hand), "not this operator's to lift");
    assert_eq!(hand_over(&a, Some(&by_hand)), HandOver::Unblock);
    // Being destroyed: the move waits until it is gone.
    let going = workspace(UID, deleting.clone());
    assert_eq!(hand_over(&a, Some(&going)), HandOver::AwaitDeletion);
    // Gone, or someone else's: the move may go on.
    assert_eq!(hand_over(&a, None), HandOver::Unblock);
    let theirs = workspace("uid-b", json!({}));
    assert_eq!(hand_over(&a, Some(&theirs)), HandOver::Unblock);
    assert_eq!(hand_over(&apply(json!({})), None), HandOver::Nothing);
    assert_eq!(
        hand_over(&apply(released), Some(&confirmed)),
        HandOver::Nothing
    );
    // A deleted apply keeps its Workspace for the destroy after the pause.
    let mut deleted = blocked;
    merge(&mut deleted, deleting);
    assert_eq!(hand_over(&apply(deleted), Some(&ws)), HandOver::Nothing);
}
