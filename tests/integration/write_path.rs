//! What the operator writes to its children: removals reach them, reordering a set writes
//! nothing, and every write names the operator's field manager.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::ObjectMeta;
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};

use capt_fargate::api::{CAPTControlPlane, Workspace, WorkspaceTemplateApply};
use capt_fargate::names;

use crate::support::samples::{CP, Samples, profile};
use crate::support::{Operator, eventually};

const WAIT: Duration = Duration::from_secs(60);

/// The samples with the operator running, converged: 2 default and 2 additional profiles.
async fn converged(prefix: &str) -> (Samples, Operator) {
    let samples = Samples::start(prefix, Duration::from_millis(100)).await;
    let operator = Operator::start(samples.client.clone(), &samples.ns.name);
    samples.create_vpc_secret().await;
    samples.all_ready_within(4, WAIT).await;
    (samples, operator)
}

async fn stop(samples: Samples, operator: Operator) {
    operator.stop().await;
    samples.stop().await;
}

/// The Workspace of the apply `name` in the samples' namespace.
async fn workspace_of(samples: &Samples, name: &str) -> Result<Workspace, String> {
    Api::<Workspace>::all(samples.client.clone())
        .get_opt(&names::workspace_name(&samples.ns.name, name))
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no Workspace for {name}"))
}

/// The keys of a JSON object (empty for anything else).
fn keys(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// The spec's additional profiles as JSON, to patch back changed.
fn profiles_of(cp: &CAPTControlPlane) -> Vec<Value> {
    cp.spec
        .additional_fargate_profiles
        .iter()
        .flatten()
        .map(|p| serde_json::to_value(p).unwrap())
        .collect()
}

#[tokio::test]
async fn dropping_a_default_profile_removes_it_from_the_eks_apply_and_its_workspace() {
    let (env, operator) = converged("removal").await;
    let eks = names::eks_apply_name(CP);
    let before = env.applies().get(&eks).await.unwrap();
    assert_eq!(
        keys(before.spec.terraform_values().get("fargate_profiles")),
        ["karpenter", "kube-system"]
    );

    // Omitted means both defaults; only kube-system now: a change that only removes.
    env.patch_spec(json!({ "defaultFargateProfiles": ["kube-system"] }))
        .await;
    let after = eventually("karpenter gone from the EKS apply", WAIT, || async {
        let a = env.applies().get(&eks).await.map_err(|e| e.to_string())?;
        let tv = a.spec.terraform_values();
        match keys(tv.get("fargate_profiles")).as_slice() {
            [only] if only == "kube-system" => Ok(a),
            other => Err(format!("fargate_profiles {other:?}")),
        }
    })
    .await;
    assert_eq!(after.uid(), before.uid(), "updated in place");
    assert_eq!(
        after.metadata.generation,
        before.metadata.generation.map(|g| g + 1)
    );
    // Nothing else of the apply changed.
    let mut expected = before.spec.clone();
    let mut variables = expected.terraform_values();
    variables
        .get_mut("fargate_profiles")
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove("karpenter");
    expected.terraform_variables = Some(capt_fargate::api::compact::compact_values(variables));
    assert_eq!(
        serde_json::to_value(&after.spec).unwrap(),
        serde_json::to_value(&expected).unwrap()
    );
    eventually("karpenter gone from the EKS Workspace", WAIT, || async {
        let ws = workspace_of(&env, &eks).await?;
        let varmap = ws.spec.for_provider.varmap.clone().unwrap_or_default();
        match keys(varmap.get("fargate_profiles")).as_slice() {
            [only] if only == "kube-system" => Ok(()),
            other => Err(format!("fargate_profiles {other:?}")),
        }
    })
    .await;
    stop(env, operator).await;
}

/// `n` tags `tag-00` … for a profile.
fn tags(n: usize) -> BTreeMap<String, String> {
    (0..n)
        .map(|i| (format!("tag-{i:02}"), format!("value-{i}")))
        .collect()
}

/// The profile's own tags among `tags` (the cluster's `additionalTags` are merged in).
fn profile_tags(tags: Option<&Value>) -> Vec<String> {
    keys(tags)
        .into_iter()
        .filter(|k| k.starts_with("tag-"))
        .collect()
}

#[tokio::test]
async fn a_profile_that_drops_tags_keeps_exactly_the_rest_on_its_apply_and_workspace() {
    let (env, operator) = converged("tags").await;
    let name = &names::profile_apply_name(CP, "tagged");
    let cp = env.cps().get(CP).await.unwrap();
    let mut list = profiles_of(&cp);
    let mut tagged = profile("tagged", "tagged");
    tagged["tags"] = json!(tags(25));
    list.push(tagged.clone());
    env.patch_spec(json!({ "additionalFargateProfiles": list }))
        .await;
    env.all_ready_within(5, WAIT).await;
    let apply = env.applies().get(name).await.unwrap();
    let tv = apply.spec.terraform_values();
    assert_eq!(profile_tags(tv.get("tags")).len(), 25);

    // The same profile with 19 of its 25 tags: updated in place, not replaced.
    tagged["tags"] = json!(tags(19));
    *list.last_mut().unwrap() = tagged;
    env.patch_spec(json!({ "additionalFargateProfiles": list }))
        .await;
    let want: Vec<String> = tags(19).into_keys().collect();
    let updated = eventually("19 tags on the apply", WAIT, || async {
        let a = env.applies().get(name).await.map_err(|e| e.to_string())?;
        let tv = a.spec.terraform_values();
        let got = profile_tags(tv.get("tags"));
        if got == want {
            Ok(a)
        } else {
            Err(format!("{} tags", got.len()))
        }
    })
    .await;
    assert_eq!(updated.uid(), apply.uid(), "tags change in place");
    // The cluster's own tag stays merged in.
    let tv = updated.spec.terraform_values();
    assert_eq!(tv["tags"]["environment"], json!("demo"));
    assert_eq!(keys(tv.get("tags")).len(), 20);
    eventually("19 tags on the Workspace", WAIT, || async {
        let ws = workspace_of(&env, name).await?;
        let varmap = ws.spec.for_provider.varmap.clone().unwrap_or_default();
        let got = profile_tags(varmap.get("tags"));
        if got == want && keys(varmap.get("tags")).len() == 20 {
            Ok(())
        } else {
            Err(format!("{} tags", got.len()))
        }
    })
    .await;
    stop(env, operator).await;
}

/// uid, generation and resourceVersion: any write changes the last.
fn version(meta: &ObjectMeta) -> (Option<String>, Option<i64>, Option<String>) {
    (
        meta.uid.clone(),
        meta.generation,
        meta.resource_version.clone(),
    )
}

#[tokio::test]
async fn reordering_selectors_or_subnets_writes_nothing_to_the_profile() {
    let (env, operator) = converged("sets").await;
    let (monitoring, batch) = (
        &names::profile_apply_name(CP, "monitoring"),
        &names::profile_apply_name(CP, "batch-jobs"),
    );
    // Give batch-jobs two subnets (a real change: it is replaced) and let it settle.
    let cp = env.cps().get(CP).await.unwrap();
    let mut list = profiles_of(&cp);
    assert_eq!(list[0]["name"], "monitoring");
    assert_eq!(list[0]["selectors"].as_array().unwrap().len(), 2);
    assert_eq!(list[1]["name"], "batch-jobs");
    let old_batch = env.applies().get(batch).await.unwrap();
    list[1]["subnetIDs"] = json!(["subnet-0aa", "subnet-0bb"]);
    env.patch_spec(json!({ "additionalFargateProfiles": list.clone() }))
        .await;
    eventually("batch-jobs replaced with its subnets", WAIT, || async {
        let a = env
            .applies()
            .get_opt(batch)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("gone")?;
        if a.uid() != old_batch.uid() {
            Ok(())
        } else {
            Err("the old apply".into())
        }
    })
    .await;
    env.all_ready_within(4, WAIT).await;
    // Let the replaced profile's last status writes land before taking the versions.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let applies: Api<WorkspaceTemplateApply> = env.applies();
    let before = [
        applies.get(monitoring).await.unwrap(),
        applies.get(batch).await.unwrap(),
    ];
    let workspaces_before = [
        workspace_of(&env, monitoring).await.unwrap(),
        workspace_of(&env, batch).await.unwrap(),
    ];
    let destroys = env
        .provider
        .observations
        .lock()
        .unwrap()
        .destroy_order
        .len();

    // Swap monitoring's two selectors and batch-jobs' two subnets.
    list[0]["selectors"].as_array_mut().unwrap().reverse();
    list[1]["subnetIDs"] = json!(["subnet-0bb", "subnet-0aa"]);
    env.patch_spec(json!({ "additionalFargateProfiles": list }))
        .await;
    // Once the status is for the new generation, the reconcile that saw it is done.
    env.all_ready_within(4, WAIT).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (old, name) in before.iter().zip([monitoring, batch]) {
        let now = applies.get(name).await.unwrap();
        assert_eq!(version(now.meta()), version(old.meta()), "{name} written");
    }
    for (old, name) in workspaces_before.iter().zip([monitoring, batch]) {
        let now = workspace_of(&env, name).await.unwrap();
        assert_eq!(
            (now.uid(), now.metadata.generation),
            (old.uid(), old.metadata.generation),
            "Workspace of {name} changed"
        );
    }
    assert_eq!(
        env.provider
            .observations
            .lock()
            .unwrap()
            .destroy_order
            .len(),
        destroys,
        "nothing destroyed"
    );
    stop(env, operator).await;
}

/// The field managers in `managed_fields` of `meta`, with their operations.
fn managers(meta: &ObjectMeta) -> Vec<(String, String)> {
    meta.managed_fields
        .iter()
        .flatten()
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_write_of_the_operator_names_its_field_manager() {
    // The operator runs with the tests' client, which sends no User-Agent: a write that names
    // no field manager shows as an unnamed one.
    let (env, operator) = converged("managers").await;
    let cp = env.cps().get(CP).await.unwrap();
    let eks = env.applies().get(&names::eks_apply_name(CP)).await.unwrap();
    let profile = env
        .applies()
        .get(&names::profile_apply_name(CP, "monitoring"))
        .await
        .unwrap();
    let ws = workspace_of(&env, &names::profile_apply_name(CP, "monitoring"))
        .await
        .unwrap();
    for (what, meta) in [
        ("control plane", cp.meta()),
        ("EKS apply", eks.meta()),
        ("profile apply", profile.meta()),
        ("Workspace", ws.meta()),
    ] {
        let found = managers(meta);
        assert!(
            found
                .iter()
                .all(|(m, _)| !m.is_empty() && m != "unknown" && !m.starts_with("kube-rs")),
            "{what}: an unnamed field manager in {found:?}"
        );
        assert!(
            found
                .iter()
                .any(|(m, op)| m == names::FIELD_MANAGER && op == "Update"),
            "{what}: no write of {} in {found:?}",
            names::FIELD_MANAGER
        );
    }
    // The control plane's finalizer is the operator's.
    let finalizer_owner = cp
        .managed_fields()
        .iter()
        .find(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:metadata/f:finalizers").is_some())
        })
        .and_then(|m| m.manager.clone());
    assert_eq!(finalizer_owner.as_deref(), Some(names::FIELD_MANAGER));
    stop(env, operator).await;
}

#[tokio::test]
async fn events_name_the_operator_as_their_field_manager() {
    // The operator names itself as the field manager of its Events (`runtime::event_series`),
    // and a client configured as `capt-fargate run` configures its own names it in its
    // User-Agent too.
    let env = Samples::start("events", Duration::from_millis(100)).await;
    let path = crate::support::cluster::kubeconfig().await;
    let mut config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&path).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    capt_fargate::run::identify(&mut config);
    let operator = Operator::start(kube::Client::try_from(config).unwrap(), &env.ns.name);
    env.create_vpc_secret().await;
    env.all_ready_within(4, WAIT).await;
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(env.client.clone(), &env.ns.name);
    let published = eventually("the operator's events", WAIT, || async {
        let published: Vec<_> = events
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?
            .items
            .into_iter()
            .filter(|e| e.reporting_controller.as_deref() == Some(names::FIELD_MANAGER))
            .collect();
        if published
            .iter()
            .any(|e| e.reason.as_deref() == Some("FargateProfilesReady"))
        {
            Ok(published)
        } else {
            Err(format!("{} events", published.len()))
        }
    })
    .await;
    for event in &published {
        let found = managers(event.meta());
        assert!(
            !found.is_empty() && found.iter().all(|(m, _)| m == names::FIELD_MANAGER),
            "event {}: {found:?}",
            event.name_any()
        );
    }
    operator.stop().await;
    env.stop().await;
}

#[tokio::test]
async fn a_repeated_event_counts_on_one_event_and_a_new_note_is_a_new_event() {
    use capt_fargate::runtime::event_series::Publisher;
    use k8s_openapi::api::events::v1::Event as K8sEvent;
    use kube::runtime::events::{Event, EventType};
    let client = crate::support::client().await;
    let ns = crate::support::TestNamespace::new(&client, "event-series").await;
    let publisher = Publisher::new(client.clone(), names::FIELD_MANAGER, Some("pod-1".into()));
    let regarding = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("controlplane.cluster.x-k8s.io/v1beta1".into()),
        kind: Some("CAPTControlPlane".into()),
        namespace: Some(ns.name.clone()),
        name: Some("cp".into()),
        uid: Some("00000000-0000-0000-0000-000000000001".into()),
        ..Default::default()
    };
    let event = |note: &str| Event {
        type_: EventType::Warning,
        reason: "FargateProfileFailed".into(),
        note: Some(note.into()),
        action: "FargateProfileFailed".into(),
        secondary: None,
    };
    for _ in 0..3 {
        publisher
            .publish(&event("quota"), &regarding)
            .await
            .unwrap();
    }
    publisher
        .publish(&event("throttled"), &regarding)
        .await
        .unwrap();
    assert_eq!(publisher.series(), 2);
    let events: Api<K8sEvent> = Api::namespaced(client.clone(), &ns.name);
    let mut listed = events.list(&Default::default()).await.unwrap().items;
    listed.sort_by_key(|e| e.note.clone());
    let summary: Vec<_> = listed
        .iter()
        .map(|e| {
            (
                e.note.clone().unwrap_or_default(),
                e.series.as_ref().map(|s| s.count),
                e.reporting_controller.clone().unwrap_or_default(),
                e.reporting_instance.clone().unwrap_or_default(),
                e.type_.clone().unwrap_or_default(),
                e.regarding.as_ref().and_then(|r| r.name.clone()),
            )
        })
        .collect();
    let row = |note: &str, count| {
        (
            note.to_string(),
            count,
            names::FIELD_MANAGER.to_string(),
            "pod-1".to_string(),
            "Warning".to_string(),
            Some("cp".to_string()),
        )
    };
    assert_eq!(summary, vec![row("quota", Some(3)), row("throttled", None)]);
    let managers: Vec<_> = listed.iter().flat_map(|e| managers(e.meta())).collect();
    assert!(
        managers.iter().all(|(m, _)| m == names::FIELD_MANAGER),
        "{managers:?}"
    );
    // The series' Event is gone (the API server's event TTL, or by hand): the next occurrence
    // starts a new Event instead of failing on the patch.
    let quota = listed[0].name_any();
    events.delete(&quota, &Default::default()).await.unwrap();
    publisher
        .publish(&event("quota"), &regarding)
        .await
        .unwrap();
    let again: Vec<_> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.note.as_deref() == Some("quota"))
        .map(|e| (e.name_any() == quota, e.series.map(|s| s.count)))
        .collect();
    assert_eq!(again, vec![(false, None)], "one new Event, counted once");
}

#[tokio::test]
async fn a_label_the_operator_no_longer_sets_is_removed_while_others_labels_stay() {
    let (env, operator) = converged("labels").await;
    let name = &names::profile_apply_name(CP, "monitoring");
    let apply = env.applies().get(name).await.unwrap();
    let record: Value =
        serde_json::from_str(&apply.annotations()[names::ANNOTATION_APPLIED]).unwrap();
    assert_eq!(
        record["labels"].as_array().unwrap().len(),
        apply.labels().len(),
        "the record names the labels the operator set: {record}"
    );
    // As an earlier version would have left it: one more label of the operator's, named in
    // its record, and a label someone else added.
    let old = "fargate.capt.cluster.x-k8s.io/retired";
    let mut earlier = record.clone();
    earlier["digest"] = json!("0000000000000000");
    earlier["labels"].as_array_mut().unwrap().push(json!(old));
    let patch = json!({ "metadata": {
        "labels": { old: "x", "team": "platform" },
        "annotations": { names::ANNOTATION_APPLIED: earlier.to_string() }
    } });
    env.applies()
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    let restored = eventually("the retired label removed", WAIT, || async {
        let a = env.applies().get(name).await.map_err(|e| e.to_string())?;
        if a.labels().contains_key(old) {
            Err(format!("{:?}", a.labels()))
        } else {
            Ok(a)
        }
    })
    .await;
    assert_eq!(restored.labels()["team"], "platform");
    assert_eq!(
        restored.annotations()[names::ANNOTATION_APPLIED],
        apply.annotations()[names::ANNOTATION_APPLIED]
    );
    assert_eq!(restored.metadata.generation, apply.metadata.generation);
    // And then nothing more is written.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = env.applies().get(name).await.unwrap();
    assert_eq!(version(later.meta()), version(restored.meta()));
    stop(env, operator).await;
}

/// The resourceVersions of the samples' Workspaces and applies.
async fn versions(samples: &Samples) -> BTreeMap<String, Option<String>> {
    let mut out: BTreeMap<String, Option<String>> = samples
        .workspaces()
        .await
        .iter()
        .map(|w| (format!("Workspace {}", w.name_any()), w.resource_version()))
        .collect();
    let applies = samples.applies().list(&Default::default()).await.unwrap();
    out.extend(
        applies
            .items
            .iter()
            .map(|a| (format!("apply {}", a.name_any()), a.resource_version())),
    );
    out
}

/// provider-terraform writes annotations to the Workspaces (the external name, and the
/// create-pending and create-succeeded marks, each in an update of its own) and owns their
/// connection Secrets: a converged operator does not answer those writes with writes of its
/// own, and neither does a restarted one.
#[tokio::test]
async fn the_providers_annotations_and_connection_secrets_cause_no_writes() {
    use crate::support::simulated_provider::{
        EXTERNAL_CREATE_PENDING, EXTERNAL_CREATE_SUCCEEDED, EXTERNAL_NAME,
    };
    let (env, operator) = converged("provider-writes").await;
    for ws in env.workspaces().await {
        let a = ws.annotations();
        assert_eq!(a.get(EXTERNAL_NAME), Some(&ws.name_any()), "{a:?}");
        assert!(
            a.contains_key(EXTERNAL_CREATE_PENDING) && a.contains_key(EXTERNAL_CREATE_SUCCEEDED),
            "{a:?}"
        );
        let r = ws.spec.write_connection_secret_to_ref.clone().unwrap();
        let secret =
            Api::<k8s_openapi::api::core::v1::Secret>::namespaced(env.client.clone(), &r.namespace)
                .get(&r.name)
                .await
                .unwrap();
        let owner = secret
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true))
            .cloned();
        assert_eq!(
            owner.map(|o| (o.kind, o.uid)),
            Some(("Workspace".to_string(), ws.uid().unwrap())),
            "the connection Secret {} is controlled by its Workspace",
            r.name
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = versions(&env).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(versions(&env).await, before, "writes at steady state");
    operator.stop().await;
    let operator = Operator::start(env.client.clone(), &env.ns.name);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        versions(&env).await,
        before,
        "writes by a restarted operator"
    );
    stop(env, operator).await;
}

/// The connection Secret goes with its Workspace (garbage-collected, as crossplane-runtime
/// leaves it), and provider-terraform refuses to take over a Secret of that name that no one
/// controls: the profile reports it and the Secret is left as it was.
#[tokio::test]
async fn an_uncontrolled_secret_in_the_way_is_reported_not_overwritten() {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    let (env, operator) = converged("uncontrolled").await;
    let monitoring = names::profile_apply_name(CP, "monitoring");
    let ws = workspace_of(&env, &monitoring).await.unwrap();
    let r = ws.spec.write_connection_secret_to_ref.clone().unwrap();
    let secrets = Api::<Secret>::namespaced(env.client.clone(), &r.namespace);
    let cp = env.cps().get(CP).await.unwrap();
    let all = profiles_of(&cp);
    let others: Vec<Value> = all
        .iter()
        .filter(|p| p["name"] != "monitoring")
        .cloned()
        .collect();
    env.patch_spec(json!({ "additionalFargateProfiles": others }))
        .await;
    eventually("the connection Secret garbage-collected", WAIT, || async {
        match secrets.get_opt(&r.name).await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(_) => Err("still there".to_string()),
        }
    })
    .await;
    let mine = Secret {
        metadata: ObjectMeta {
            name: Some(r.name.clone()),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            "mine".to_string(),
            ByteString(b"keep".to_vec()),
        )])),
        ..Default::default()
    };
    secrets.create(&Default::default(), &mine).await.unwrap();
    env.patch_spec(json!({ "additionalFargateProfiles": all }))
        .await;
    let entry = eventually("monitoring reports the Secret in the way", WAIT, || async {
        let cp = env.cps().get(CP).await.map_err(|e| e.to_string())?;
        let entry = cp
            .status
            .and_then(|s| {
                s.fargate_profiles
                    .into_iter()
                    .find(|p| p.name == "monitoring")
            })
            .ok_or("no monitoring entry")?;
        match &entry.failure_message {
            Some(m) if m.contains("refusing to modify uncontrolled secret") => Ok(entry),
            _ => Err(format!("{entry:?}")),
        }
    })
    .await;
    assert!(!entry.ready, "{entry:?}");
    let kept = secrets.get(&r.name).await.unwrap();
    assert_eq!(kept.data, mine.data);
    assert!(kept.owner_references().is_empty());
    stop(env, operator).await;
}

/// A template that orphans (`deletionPolicy: Orphan`) would leave a replaced Fargate profile in
/// AWS, and the replacement's create would fail with "already exists" (the simulated provider
/// models it). The control plane's Workspaces always destroy, so a replacement goes through.
#[tokio::test]
async fn a_replaced_profile_is_destroyed_even_if_its_template_orphans() {
    use capt_fargate::api::WorkspaceTemplate;
    let (env, operator) = converged("orphan").await;
    let templates: Api<WorkspaceTemplate> = Api::namespaced(env.client.clone(), &env.ns.name);
    templates
        .patch(
            "eks-fargate-profile",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                json!({ "spec": { "template": { "spec": { "deletionPolicy": "Orphan" } } } }),
            ),
        )
        .await
        .unwrap();
    let monitoring = names::profile_apply_name(CP, "monitoring");
    let old = workspace_of(&env, &monitoring).await.unwrap();
    let cp = env.cps().get(CP).await.unwrap();
    let mut list = profiles_of(&cp);
    assert_eq!(list[0]["name"], "monitoring");
    list[0]["selectors"] = json!([{ "namespace": "elsewhere" }]);
    env.patch_spec(json!({ "additionalFargateProfiles": list }))
        .await;
    let new = eventually("monitoring replaced", WAIT, || async {
        let ws = workspace_of(&env, &monitoring).await?;
        if ws.uid() != old.uid() {
            Ok(ws)
        } else {
            Err("not replaced yet".to_string())
        }
    })
    .await;
    assert_eq!(new.spec.deletion_policy.as_deref(), Some("Delete"));
    let cp = env.all_ready_within(4, WAIT).await;
    assert_eq!(cp.status.unwrap().failure_reason, None);
    let destroys = env.provider.observations.lock().unwrap().destroys.clone();
    assert_eq!(destroys.get(&old.name_any()), Some(&1), "{destroys:?}");
    stop(env, operator).await;
}
