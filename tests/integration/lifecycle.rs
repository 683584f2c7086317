//! End-to-end lifecycle of the samples on the real control plane, with the simulated
//! provider-terraform answering for AWS.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use capt_fargate::api::conditions::find;
use capt_fargate::api::{CAPTControlPlane, FargateProfilePhase};
use capt_fargate::names;

use crate::support::samples::{CP, Samples, profile};
use crate::support::simulated_provider::OperationKind;
use crate::support::{Operator, eventually};

const WAIT: Duration = Duration::from_secs(60);

/// The samples with the operator running in-process.
struct Env {
    samples: Samples,
    operator: Operator,
}

impl std::ops::Deref for Env {
    type Target = Samples;
    fn deref(&self) -> &Samples {
        &self.samples
    }
}

impl Env {
    async fn start(prefix: &str) -> Env {
        let samples = Samples::start(prefix, Duration::from_millis(300)).await;
        let operator = Operator::start(samples.client.clone(), &samples.ns.name);
        Env { samples, operator }
    }

    async fn stop(self) {
        self.operator.stop().await;
        self.samples.stop().await;
    }

    async fn all_ready(&self, total: usize) -> CAPTControlPlane {
        self.all_ready_within(total, WAIT).await
    }
}

fn condition(cp: &CAPTControlPlane, type_: &str) -> (String, String, String) {
    let c = cp
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

#[tokio::test]
async fn samples_converge_one_profile_at_a_time_after_the_cluster_and_its_secrets() {
    let env = Env::start("lifecycle").await;
    let cps = env.cps();

    // The EKS cluster apply is not created before the VPC secret: the control plane says so.
    let eks_name = names::eks_apply_name(CP);
    eventually("control plane waiting for the VPC secret", WAIT, || {
        let api = cps.clone();
        async move {
            let cp = api.get(CP).await.map_err(|e| e.to_string())?;
            let ready = cp
                .status
                .iter()
                .flat_map(|s| &s.conditions)
                .find(|c| c.type_ == "Ready")
                .ok_or("no Ready condition")?;
            if ready.status == "False"
                && ready
                    .message
                    .contains("waiting for the VPC connection secret")
                && ready
                    .message
                    .contains("demo-cluster-vpc-connection does not exist")
            {
                Ok(())
            } else {
                Err(format!("{ready:?}"))
            }
        }
    })
    .await;
    assert!(
        env.applies().get_opt(&eks_name).await.unwrap().is_none(),
        "no EKS apply before its VPC secret"
    );

    // Every profile waits, saying why; nothing is created before the cluster.
    let cp = eventually("profiles pending on the cluster", WAIT, || {
        let api = cps.clone();
        async move {
            let cp = api.get(CP).await.map_err(|e| e.to_string())?;
            let n = cp
                .status
                .as_ref()
                .map(|s| s.fargate_profiles.len())
                .unwrap_or(0);
            if n == 4 {
                Ok(cp)
            } else {
                Err(format!("{n} profile statuses"))
            }
        }
    })
    .await;
    let status = cp.status.clone().unwrap();
    assert_eq!(
        status
            .fargate_profiles
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["kube-system", "karpenter", "monitoring", "batch-jobs"]
    );
    let monitoring = &status.fargate_profiles[2];
    assert_eq!(monitoring.phase, Some(FargateProfilePhase::Pending));
    assert_eq!(
        monitoring.failure_reason.as_deref(),
        Some("WaitingForCluster")
    );
    assert!(
        monitoring
            .failure_message
            .as_deref()
            .unwrap()
            .contains(&eks_name),
        "{monitoring:?}"
    );
    assert_eq!(condition(&cp, "FargateProfileReady").0, "False");
    assert_eq!(condition(&cp, "FargateProfileCreating").0, "True");
    assert_eq!(condition(&cp, "FargateProfileFailed").0, "False");
    assert!(env.profile_applies().await.is_empty());

    // The VPC secret appears: the cluster is created, it writes the EKS secret, and the
    // profiles follow one at a time in spec order.
    env.create_vpc_secret().await;
    let eks = eventually("EKS apply", WAIT, || {
        let api = env.applies();
        let eks_name = eks_name.clone();
        async move {
            api.get_opt(&eks_name)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "no EKS apply yet".to_string())
        }
    })
    .await;
    let tv = eks.spec.terraform_values();
    assert_eq!(
        tv["fargate_profiles"]["kube-system"]["selectors"],
        json!([{ "namespace": "kube-system" }])
    );
    assert_eq!(
        tv["fargate_profiles"]["karpenter"]["name"],
        json!("karpenter")
    );
    let seen_two_unready = std::sync::atomic::AtomicBool::new(false);
    eventually("first profile apply", WAIT, || async {
        let applies = env.profile_applies().await;
        let unready = applies
            .iter()
            .filter(|a| {
                capt_fargate::status::apply::child_state(a)
                    != capt_fargate::status::apply::ChildState::Ready
            })
            .count();
        seen_two_unready.fetch_or(unready > 1, std::sync::atomic::Ordering::Relaxed);
        if applies.len() == 2 {
            Ok(())
        } else {
            Err(format!("{} profile applies", applies.len()))
        }
    })
    .await;
    assert!(
        !seen_two_unready.into_inner(),
        "two profiles were in progress at once"
    );
    let cp = env.all_ready(4).await;
    assert_eq!(
        cp.status
            .as_ref()
            .unwrap()
            .fargate_profiles_summary
            .as_deref(),
        Some("4/4")
    );
    assert_eq!(
        condition(&cp, "FargateProfileReady"),
        (
            "True".into(),
            "AllProfilesReady".into(),
            "4 of 4 Fargate profiles are ready".into()
        )
    );
    assert_eq!(condition(&cp, "FargateProfileCreating").0, "False");
    assert!(cp.status.as_ref().unwrap().ready);
    let eks_secret: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns.name);
    let eks_secret = eks_secret
        .get(&names::eks_connection_secret(CP))
        .await
        .unwrap();
    assert!(eks_secret.data.unwrap().contains_key("cluster_endpoint"));

    // The profile applies and Workspaces are what the spec says.
    let applies = env.profile_applies().await;
    let monitoring = applies
        .iter()
        .find(|a| a.name_any() == names::profile_apply_name(CP, "monitoring"))
        .expect("monitoring apply");
    assert_eq!(monitoring.owner_references()[0].kind, "CAPTControlPlane");
    let workspaces = env.workspaces().await;
    assert_eq!(workspaces.len(), 3, "EKS + 2 profiles");
    let ws = workspaces
        .iter()
        .find(|w| {
            w.annotations()[names::ANNOTATION_APPLY]
                .ends_with(&format!("/{}", names::profile_apply_name(CP, "monitoring")))
        })
        .unwrap();
    let varmap = ws.spec.for_provider.varmap.clone().unwrap();
    assert_eq!(varmap["profile_name"], json!("monitoring"));
    assert_eq!(
        varmap["selectors"][1]["labels"],
        json!({ "app": "prometheus" })
    );
    assert_eq!(
        ws.spec
            .write_connection_secret_to_ref
            .as_ref()
            .unwrap()
            .name,
        format!("{}-connection", names::profile_apply_name(CP, "monitoring"))
    );

    // Add a profile.
    let mut spec_profiles = cp.spec.additional_fargate_profiles.clone().unwrap();
    let mut list: Vec<serde_json::Value> = spec_profiles
        .iter()
        .map(|p| serde_json::to_value(p).unwrap())
        .collect();
    list.push(profile("analytics", "analytics"));
    env.patch_spec(json!({ "additionalFargateProfiles": list }))
        .await;
    env.all_ready(5).await;

    // Change a profile's selectors: it is deleted, then created again.
    let old_uid = env
        .applies()
        .get(&names::profile_apply_name(CP, "monitoring"))
        .await
        .unwrap()
        .uid();
    spec_profiles[0].selectors[0].namespace = "metrics".into();
    let mut list: Vec<serde_json::Value> = spec_profiles
        .iter()
        .map(|p| serde_json::to_value(p).unwrap())
        .collect();
    list.push(profile("analytics", "analytics"));
    env.patch_spec(json!({ "additionalFargateProfiles": list }))
        .await;
    eventually("monitoring replaced", WAIT, || async {
        let a = env
            .applies()
            .get_opt(&names::profile_apply_name(CP, "monitoring"))
            .await
            .map_err(|e| e.to_string())?
            .ok_or("gone")?;
        if a.uid() != old_uid {
            Ok(())
        } else {
            Err("same apply".into())
        }
    })
    .await;
    env.all_ready(5).await;
    let ws = env.workspaces().await;
    let ws = ws
        .iter()
        .find(|w| {
            w.annotations()[names::ANNOTATION_APPLY]
                .ends_with(&format!("/{}", names::profile_apply_name(CP, "monitoring")))
        })
        .unwrap();
    assert_eq!(
        ws.spec.for_provider.varmap.as_ref().unwrap()["selectors"][0]["namespace"],
        json!("metrics")
    );
    assert!(
        env.provider
            .observations
            .lock()
            .unwrap()
            .destroys
            .keys()
            .any(|k| k.starts_with(&names::profile_apply_name(CP, "monitoring")))
    );

    // Remove one.
    let list: Vec<serde_json::Value> = vec![
        serde_json::to_value(&spec_profiles[0]).unwrap(),
        profile("analytics", "analytics"),
    ];
    env.patch_spec(json!({ "additionalFargateProfiles": list }))
        .await;
    let cp = env.all_ready(4).await;
    assert!(
        !cp.status
            .unwrap()
            .fargate_profiles
            .iter()
            .any(|p| p.name == "batch-jobs")
    );
    assert!(
        env.applies()
            .get_opt(&names::profile_apply_name(CP, "batch-jobs"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(!env.workspaces().await.iter().any(|w| {
        w.name_any()
            .starts_with(&names::profile_apply_name(CP, "batch-jobs"))
    }));

    assert_eq!(
        env.provider.overlaps(),
        Vec::<String>::new(),
        "overlapping Fargate operations"
    );
    // Every Fargate operation AWS saw, in order: the default profiles with the cluster, then
    // the additional ones one by one, the replacement (delete, then create) and the removal.
    use OperationKind::{Create, Delete};
    let expected = [
        (Create, "karpenter", true),
        (Create, "kube-system", true),
        (Create, "monitoring", false),
        (Create, "batch-jobs", false),
        (Create, "analytics", false),
        (Delete, "monitoring", false),
        (Create, "monitoring", false),
        (Delete, "batch-jobs", false),
    ]
    .map(|(kind, profile, default)| (kind, profile.to_string(), default));
    assert_eq!(
        env.provider.observations.lock().unwrap().accepted(),
        expected
    );
    env.stop().await;
}

#[tokio::test]
async fn a_failed_profile_stops_the_ones_after_it_and_recovers() {
    let env = Env::start("failure").await;
    env.create_vpc_secret().await;
    env.all_ready(4).await;
    env.provider.inject_failure(
        "quota",
        "ResourceLimitExceededException: Fargate profile limit reached",
    );
    let cp = env.cps().get(CP).await.unwrap();
    let mut list: Vec<serde_json::Value> = cp
        .spec
        .additional_fargate_profiles
        .unwrap()
        .iter()
        .map(|p| serde_json::to_value(p).unwrap())
        .collect();
    list.push(profile("quota", "quota"));
    list.push(profile("after", "after"));
    env.patch_spec(json!({ "additionalFargateProfiles": list }))
        .await;

    let cp = eventually("quota profile failed", WAIT, || async {
        let cp = env.cps().get(CP).await.map_err(|e| e.to_string())?;
        let s = cp.status.clone().unwrap_or_default();
        match s.fargate_profiles.iter().find(|p| p.name == "quota") {
            Some(p) if p.phase == Some(FargateProfilePhase::Failed) => Ok(cp),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let status = cp.status.clone().unwrap();
    let quota = status
        .fargate_profiles
        .iter()
        .find(|p| p.name == "quota")
        .unwrap();
    assert_eq!(quota.failure_reason.as_deref(), Some("ReconcileError"));
    assert!(
        quota
            .failure_message
            .as_deref()
            .unwrap()
            .contains("ResourceLimitExceededException"),
        "{quota:?}"
    );
    let after = status
        .fargate_profiles
        .iter()
        .find(|p| p.name == "after")
        .unwrap();
    assert_eq!(after.phase, Some(FargateProfilePhase::Pending));
    assert_eq!(
        after.failure_reason.as_deref(),
        Some("BlockedByFailedProfile")
    );
    let (failed, reason, message) = condition(&cp, "FargateProfileFailed");
    assert_eq!(
        (failed.as_str(), reason.as_str()),
        ("True", "ReconcileError")
    );
    assert!(message.contains("quota"));
    // The control plane itself stays ready: a profile failure is not a cluster failure.
    assert!(status.ready);
    assert!(
        env.applies()
            .get_opt(&names::profile_apply_name(CP, "after"))
            .await
            .unwrap()
            .is_none()
    );

    env.provider.clear_failure("quota");
    let cp = env.all_ready(6).await;
    assert_eq!(condition(&cp, "FargateProfileFailed").0, "False");
    assert_eq!(
        env.provider.overlaps(),
        Vec::<String>::new(),
        "overlapping Fargate operations"
    );
    env.stop().await;
}

#[tokio::test]
async fn children_edited_or_deleted_by_hand_are_restored_and_deletion_leaves_nothing() {
    let env = Env::start("drift").await;
    env.create_vpc_secret().await;
    env.all_ready(4).await;

    // Edited by hand: restored.
    let name = &names::profile_apply_name(CP, "monitoring");
    let patch = json!({ "spec": { "variables": { "profile_name": "hijacked" } } });
    env.applies()
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("edited apply restored", WAIT, || async {
        let a = env.applies().get(name).await.map_err(|e| e.to_string())?;
        let v = a
            .spec
            .variables
            .unwrap_or_default()
            .get("profile_name")
            .cloned()
            .unwrap_or_default();
        if v == "monitoring" { Ok(()) } else { Err(v) }
    })
    .await;

    // Deleted by hand: created again.
    let old_uid = env.applies().get(name).await.unwrap().uid();
    env.applies()
        .delete(name, &Default::default())
        .await
        .unwrap();
    eventually("deleted apply recreated", WAIT, || async {
        let a = env
            .applies()
            .get_opt(name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("not yet")?;
        if a.uid() != old_uid {
            Ok(())
        } else {
            Err("old one still there".into())
        }
    })
    .await;
    env.all_ready(4).await;

    // Deleting the control plane deletes the profiles one at a time, then the cluster.
    env.cps().delete(CP, &Default::default()).await.unwrap();
    eventually("control plane gone", WAIT, || async {
        match env.cps().get_opt(CP).await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(cp) => Err(format!("finalizers {:?}", cp.finalizers())),
        }
    })
    .await;
    assert!(
        env.applies()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "no apply left"
    );
    assert!(env.workspaces().await.is_empty(), "no Workspace left");
    let order = env
        .provider
        .observations
        .lock()
        .unwrap()
        .destroy_order
        .clone();
    assert_eq!(order.len(), 4, "{order:?}");
    assert!(
        order
            .last()
            .unwrap()
            .starts_with("demo-cluster-eks-controlplane"),
        "cluster destroyed last: {order:?}"
    );
    assert_eq!(
        env.provider.overlaps(),
        Vec::<String>::new(),
        "overlapping Fargate operations"
    );
    // The cluster's destroy deleted its default profiles, after every additional one.
    let accepted = env.provider.observations.lock().unwrap().accepted();
    let tail: Vec<_> = accepted.iter().rev().take(4).rev().cloned().collect();
    use OperationKind::Delete;
    assert_eq!(
        tail.iter()
            .map(|(kind, _, default)| (*kind, *default))
            .collect::<Vec<_>>(),
        [
            (Delete, false),
            (Delete, false),
            (Delete, true),
            (Delete, true)
        ],
        "{accepted:?}"
    );
    env.stop().await;
}

/// The overlap check can fail: an operator told by a test-only knob
/// (`Context::test_only_create_profiles_at_once`) to break the one-at-a-time rule creates both
/// sample profiles at once, and the simulated provider refuses one and records the overlap.
#[tokio::test]
async fn two_profiles_created_at_once_are_seen_by_the_overlap_check() {
    // Long enough that the second create surely starts while the first runs.
    // A provider that runs one reconcile at a time (CAPT_SIM_SERIAL) never overlaps: this
    // test needs concurrent reconciles.
    let samples = Samples::start_concurrent("overlap", Duration::from_secs(3)).await;
    let operator = Operator::start_with(samples.client.clone(), &samples.ns.name, |ctx| {
        ctx.test_only_create_profiles_at_once = true
    });
    samples.create_vpc_secret().await;
    let overlaps = eventually("an overlap recorded", WAIT, || async {
        let overlaps = samples.provider.overlaps();
        if overlaps.is_empty() {
            let accepted = samples.provider.observations.lock().unwrap().accepted();
            Err(format!("operations {accepted:?}"))
        } else {
            Ok(overlaps)
        }
    })
    .await;
    println!("{overlaps:#?}");
    assert!(
        overlaps[0].contains("create of profile monitoring")
            && overlaps[0].contains("create of profile batch-jobs"),
        "{overlaps:?}"
    );
    // AWS's answer reaches the refused profile's apply as the real provider words it.
    let refused = eventually("the refusal on an apply", WAIT, || async {
        for apply in samples.profile_applies().await {
            let synced = apply
                .status
                .as_ref()
                .and_then(|s| find(&s.conditions, "Synced").cloned());
            if let Some(message) = synced.and_then(|c| c.message)
                && message.contains("ResourceInUseException")
            {
                return Ok(message);
            }
        }
        Err("no apply reports ResourceInUseException".to_string())
    })
    .await;
    assert!(
        refused.contains("currently has Fargate profile"),
        "{refused}"
    );
    operator.stop().await;
    samples.stop().await;
}

/// Fargate profiles counted in the operator's `fargate_profiles` gauge, over all phases.
fn profiles_counted(operator: &Operator) -> i64 {
    operator
        .metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("capt_fargate_fargate_profiles{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
        .sum()
}

/// What the operator keeps per control plane (its profiles in the metrics, the events it sent)
/// goes with it, also when someone else removed its finalizer before the teardown finished.
#[tokio::test]
async fn a_control_plane_deleted_without_its_finalizer_leaves_nothing_remembered() {
    let env = Env::start("lc-forget").await;
    eventually("the default profiles counted", WAIT, || async {
        match profiles_counted(&env.operator) {
            0 => Err("none".to_string()),
            n => Ok(n),
        }
    })
    .await;
    env.cps().delete(CP, &Default::default()).await.unwrap();
    env.cps()
        .patch(
            CP,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
        )
        .await
        .unwrap();
    eventually("the control plane gone", WAIT, || async {
        match env.cps().get_opt(CP).await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(_) => Err("still there".to_string()),
        }
    })
    .await;
    eventually("nothing remembered", WAIT, || async {
        let (profiles, events) = (
            profiles_counted(&env.operator),
            env.operator.ctx.objects_with_sent_events(),
        );
        if profiles == 0 && events == 0 {
            Ok(())
        } else {
            Err(format!(
                "{profiles} profiles counted, events of {events} objects remembered"
            ))
        }
    })
    .await;
    env.stop().await;
}
