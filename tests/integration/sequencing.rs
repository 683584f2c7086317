//! The one-Fargate-operation-per-cluster rule across the EKS workspace and the profile
//! workspaces, transient and terminal errors, and teardown (order, status, events, waiting for
//! work in flight), on the real control plane with the simulated provider.

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use capt_fargate::api::{
    CAPTControlPlane, ControlPlanePhase, FargateProfilePhase, FargateProfileStatus,
    WorkspaceTemplateApply,
};
use capt_fargate::names;
use capt_fargate::status::apply::{ChildState, child_state};

use crate::support::samples::{CP, Samples, profile};
use crate::support::simulated_provider::{FAIL_ANNOTATION, Mode, SimulatedProvider, Timing};
use crate::support::{Operator, eventually};

const WAIT: Duration = Duration::from_secs(60);

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
    /// The samples with the operator; each Fargate profile operation takes `delay`.
    async fn start(prefix: &str, delay: Duration) -> Env {
        let samples = Samples::start(prefix, delay).await;
        let operator = Operator::start(samples.client.clone(), &samples.ns.name);
        Env { samples, operator }
    }

    async fn stop(self) {
        self.operator.stop().await;
        self.samples.stop().await;
    }

    async fn cp(&self) -> CAPTControlPlane {
        self.cps().get(CP).await.unwrap()
    }

    /// Waits until the apply `name` exists and its Workspace is being applied.
    async fn until_being_created(&self, name: &str) {
        eventually(&format!("{name} being created"), WAIT, || async {
            let a = self
                .applies()
                .get_opt(name)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no apply yet")?;
            match child_state(&a) {
                ChildState::Creating { reason, .. } if reason == "Creating" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    }

    async fn eks_apply(&self) -> WorkspaceTemplateApply {
        self.applies()
            .get(&names::eks_apply_name(CP))
            .await
            .unwrap()
    }

    /// The name of the EKS cluster's Workspace.
    async fn eks_workspace(&self) -> String {
        let eks = names::eks_apply_name(CP);
        self.workspaces()
            .await
            .into_iter()
            .find(|w| w.annotations()[names::ANNOTATION_APPLY].ends_with(&format!("/{eks}")))
            .expect("the EKS Workspace")
            .name_any()
    }

    /// Sets (Some) or removes (None) the simulated provider's failure on a Workspace.
    async fn fail_workspace(&self, name: &str, message: Option<&str>) {
        let api: Api<capt_fargate::api::Workspace> = Api::all(self.client.clone());
        let patch = json!({ "metadata": { "annotations": { FAIL_ANNOTATION: message } } });
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    /// Events about the control plane with `reason`.
    async fn events(&self, reason: &str) -> Vec<Event> {
        Api::<Event>::namespaced(self.client.clone(), &self.ns.name)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .collect()
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

fn entry<'a>(cp: &'a CAPTControlPlane, name: &str) -> Option<&'a FargateProfileStatus> {
    cp.status
        .as_ref()?
        .fargate_profiles
        .iter()
        .find(|p| p.name == name)
}

fn default_profiles(apply: &WorkspaceTemplateApply) -> Vec<String> {
    let tv = apply.spec.terraform_values();
    let mut keys: Vec<String> = tv["fargate_profiles"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

fn profiles(list: &[(&str, &str)]) -> serde_json::Value {
    json!(
        list.iter()
            .map(|(name, ns)| profile(name, ns))
            .collect::<Vec<_>>()
    )
}

#[tokio::test]
async fn a_default_profile_change_waits_for_the_profile_in_flight() {
    let env = Env::start("eks-waits", Duration::from_secs(6)).await;
    env.patch_spec(json!({
        "defaultFargateProfiles": ["kube-system"],
        "additionalFargateProfiles": profiles(&[("monitoring", "monitoring")]),
    }))
    .await;
    env.create_vpc_secret().await;
    let monitoring = names::profile_apply_name(CP, "monitoring");
    env.until_being_created(&monitoring).await;
    let before = env.eks_apply().await;
    assert_eq!(default_profiles(&before), ["kube-system"]);

    env.patch_spec(json!({ "defaultFargateProfiles": ["kube-system", "karpenter"] }))
        .await;
    let generation = env.cp().await.metadata.generation;
    // The control plane says the EKS change waits, while monitoring is still being created.
    let cp = eventually("karpenter waiting for monitoring", WAIT, || async {
        let cp = env.cp().await;
        let observed = cp.status.as_ref().and_then(|s| s.observed_generation);
        match entry(&cp, "karpenter") {
            Some(k) if observed == generation && k.phase == Some(FargateProfilePhase::Pending) => {
                Ok(cp)
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let karpenter = entry(&cp, "karpenter").unwrap();
    assert_eq!(
        karpenter.failure_reason.as_deref(),
        Some("WaitingForProfile")
    );
    assert!(
        karpenter
            .failure_message
            .as_deref()
            .unwrap()
            .contains("waits for profile monitoring"),
        "{karpenter:?}"
    );
    let (creating, reason, message) = condition(&cp, "FargateProfileCreating");
    assert_eq!(
        (creating.as_str(), reason.as_str()),
        ("True", "WaitingForProfile")
    );
    assert!(message.contains("monitoring"), "{message}");
    assert_eq!(
        entry(&cp, "kube-system").unwrap().phase,
        Some(FargateProfilePhase::Ready)
    );
    // The EKS apply does not change while monitoring is in flight.
    loop {
        let monitoring_state = child_state(&env.applies().get(&monitoring).await.unwrap());
        let eks = env.eks_apply().await;
        if monitoring_state == ChildState::Ready {
            break;
        }
        assert_eq!(
            eks.metadata.generation, before.metadata.generation,
            "the EKS apply changed while monitoring was {monitoring_state:?}"
        );
        assert_eq!(default_profiles(&eks), ["kube-system"]);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Then it does.
    let cp = env.all_ready_within(3, WAIT).await;
    let eks = env.eks_apply().await;
    assert!(eks.metadata.generation > before.metadata.generation);
    assert_eq!(default_profiles(&eks), ["karpenter", "kube-system"]);
    assert_eq!(
        cp.status
            .unwrap()
            .fargate_profiles
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["kube-system", "karpenter", "monitoring"]
    );
    assert!(
        env.provider.rejections().is_empty(),
        "{:?}",
        env.provider.rejections()
    );
    env.stop().await;
}

/// The other direction of the same rule: a pure removal of a default profile (issue 15's
/// karpenter input) is held too, then reaches the EKS apply, and the removed profile stays
/// listed as Deleting until the EKS workspace reports the change applied.
#[tokio::test]
async fn removing_a_default_profile_waits_for_the_profile_in_flight_and_shows_it_deleting() {
    let env = Env::start("eks-removal", Duration::from_secs(6)).await;
    env.patch_spec(json!({
        "additionalFargateProfiles": profiles(&[("monitoring", "monitoring")]),
    }))
    .await;
    env.create_vpc_secret().await;
    let monitoring = names::profile_apply_name(CP, "monitoring");
    env.until_being_created(&monitoring).await;
    let before = env.eks_apply().await;
    assert_eq!(default_profiles(&before), ["karpenter", "kube-system"]);

    env.patch_spec(json!({ "defaultFargateProfiles": ["kube-system"] }))
        .await;
    // Held while monitoring is in flight, karpenter still listed.
    loop {
        let monitoring_state = child_state(&env.applies().get(&monitoring).await.unwrap());
        if monitoring_state == ChildState::Ready {
            break;
        }
        let eks = env.eks_apply().await;
        assert_eq!(
            (eks.metadata.generation, default_profiles(&eks)),
            (before.metadata.generation, default_profiles(&before)),
            "the EKS apply changed while monitoring was {monitoring_state:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Then the removal reaches the EKS apply, and karpenter shows Deleting until it is applied.
    let eks = eventually("karpenter removed from the EKS apply", WAIT, || async {
        let eks = env.eks_apply().await;
        if default_profiles(&eks) == ["kube-system"] {
            Ok(eks)
        } else {
            Err(format!("{:?}", default_profiles(&eks)))
        }
    })
    .await;
    assert!(eks.metadata.generation > before.metadata.generation);
    let karpenter = eventually("karpenter Deleting", WAIT, || async {
        let cp = env.cp().await;
        match entry(&cp, "karpenter") {
            Some(k) if k.phase == Some(FargateProfilePhase::Deleting) => Ok(k.clone()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(!karpenter.ready, "{karpenter:?}");
    let cp = env.all_ready_within(2, WAIT).await;
    assert_eq!(
        cp.status
            .unwrap()
            .fargate_profiles
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["kube-system", "monitoring"]
    );
    assert!(
        env.provider.overlaps().is_empty(),
        "{:?}",
        env.provider.overlaps()
    );
    env.stop().await;
}

/// provider-terraform's `Ready=True/Available` carries no `observedGeneration` and stays True
/// while a changed Workspace is re-applied: the EKS apply and the removed default profile
/// must not count as done before the provider's `terraform apply` of the change has ended.
#[tokio::test]
async fn a_changed_workspace_counts_as_applied_only_after_the_provider_applied_it() {
    let env = Env::start("eks-fresh", Duration::from_secs(2)).await;
    env.patch_spec(json!({ "additionalFargateProfiles": [] }))
        .await;
    env.create_vpc_secret().await;
    env.all_ready_within(2, WAIT).await;
    let workspace = env.eks_workspace().await;
    let applies = || {
        let obs = env.provider.observations.lock().unwrap();
        obs.applies.get(&workspace).copied().unwrap_or_default()
    };
    let before = applies();
    let old = env.eks_apply().await.metadata.generation;

    env.patch_spec(json!({ "defaultFargateProfiles": ["kube-system"] }))
        .await;
    let mut seen_applying = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the change was never applied"
        );
        // Read the status first: if the provider had not finished the apply after the read,
        // it had not before.
        let eks = env.eks_apply().await;
        let cp = env.cp().await;
        let applied = applies() > before;
        let status = eks.status.clone().unwrap_or_default();
        let current =
            eks.metadata.generation > old && status.observed_generation == eks.metadata.generation;
        let ready = capt_fargate::api::conditions::find(&status.conditions, "Ready")
            .is_some_and(|c| c.is_true());
        if current && !applied {
            assert!(
                !ready,
                "the EKS apply shows Ready before the provider applied the change: {status:?}"
            );
            let karpenter = entry(&cp, "karpenter");
            assert!(
                karpenter.is_some_and(|k| !k.ready),
                "karpenter counted as removed before the provider applied it: {karpenter:?}"
            );
            seen_applying = true;
        }
        if current && applied && ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen_applying, "the re-apply was never observed in progress");
    let cp = env.all_ready_within(1, WAIT).await;
    assert_eq!(
        cp.status
            .unwrap()
            .fargate_profiles
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["kube-system"]
    );
    env.stop().await;
}

/// The Workspace of the apply named `apply`.
async fn workspace_of(env: &Env, apply: &str) -> capt_fargate::api::Workspace {
    env.workspaces()
        .await
        .into_iter()
        .find(|w| w.annotations()[names::ANNOTATION_APPLY].ends_with(&format!("/{apply}")))
        .expect("the apply's Workspace")
}

/// A profile's entry while the CP shows its error as transient (never terminal).
async fn transient_entry(env: &Env, profile: &str, text: &str) -> FargateProfileStatus {
    let cp = eventually("the error shown as transient", WAIT, || async {
        let cp = env.cp().await;
        match entry(&cp, profile) {
            Some(p)
                if p.failure_reason.as_deref() == Some("TransientError")
                    && p.failure_message
                        .as_deref()
                        .is_some_and(|m| m.contains(text)) =>
            {
                Ok(cp)
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let status = cp.status.clone().unwrap();
    assert_eq!(
        (status.failure_reason, status.failure_message),
        (None, None),
        "a transient error is not a terminal failure"
    );
    assert_ne!(status.phase, Some(ControlPlanePhase::Failed));
    assert_eq!(condition(&cp, "FargateProfileFailed").0, "False");
    entry(&cp, profile).unwrap().clone()
}

/// At the periodic plan, provider-terraform reports an observation error (throttling during
/// the refresh, expired temporary credentials) on a healthy, Ready Workspace as
/// `Synced=False` with `cannot observe external resource: …` and leaves `Ready=True`. The
/// operator shows it as transient, never as a terminal failure, and is Ready again once the
/// plan succeeds.
#[tokio::test]
async fn observe_errors_on_a_ready_profile_are_transient_and_heal() {
    let env = Env::start("observe-errors", Duration::from_millis(300)).await;
    env.patch_spec(json!({
        "additionalFargateProfiles": profiles(&[("monitoring", "monitoring")]),
    }))
    .await;
    env.create_vpc_secret().await;
    env.all_ready_within(3, WAIT).await;
    let monitoring = names::profile_apply_name(CP, "monitoring");
    for error in [
        "ThrottlingException: Rate exceeded",
        "ExpiredToken: The security token included in the request is expired",
    ] {
        env.provider.inject_observe_failure("monitoring", error);
        let entry = transient_entry(&env, "monitoring", error).await;
        assert!(!entry.ready, "{entry:?}");
        let ws = workspace_of(&env, &monitoring).await;
        let conditions = ws.status.unwrap().conditions;
        let find = |t| capt_fargate::api::conditions::find(&conditions, t).unwrap();
        assert!(
            find("Ready").is_true(),
            "the provider keeps Ready: {conditions:?}"
        );
        let synced = find("Synced");
        assert!(
            !synced.is_true()
                && synced
                    .message
                    .as_deref()
                    .unwrap()
                    .starts_with("cannot observe external resource: "),
            "{synced:?}"
        );
        env.provider.clear_observe_failure("monitoring");
        env.all_ready_within(3, WAIT).await;
    }
    // No apply ran for an observation error.
    let applies = env.provider.observations.lock().unwrap().applies.clone();
    assert_eq!(
        applies.get(&workspace_of(&env, &monitoring).await.name_any()),
        Some(&1),
        "{applies:?}"
    );
    env.stop().await;
}

/// A failing re-apply (`update failed: …`) leaves the provider's `Ready=True` as it was: the
/// change is not applied, so the profile is not Ready; a transient error is shown as such, and
/// the change goes through once the provider's retry succeeds.
#[tokio::test]
async fn a_failing_update_is_not_applied_and_heals() {
    let env = Env::start("update-fails", Duration::from_millis(300)).await;
    env.patch_spec(json!({
        "additionalFargateProfiles": profiles(&[("monitoring", "monitoring")]),
    }))
    .await;
    env.create_vpc_secret().await;
    env.all_ready_within(3, WAIT).await;
    let monitoring = names::profile_apply_name(CP, "monitoring");
    env.provider
        .inject_failure("monitoring", "ThrottlingException: Rate exceeded");
    let mut tagged = profile("monitoring", "monitoring");
    tagged["tags"] = json!({ "team": "observability" });
    env.patch_spec(json!({ "additionalFargateProfiles": [tagged] }))
        .await;
    transient_entry(&env, "monitoring", "update failed: ").await;
    let apply = env.applies().get(&monitoring).await.unwrap();
    let ready = capt_fargate::api::conditions::find(&apply.status.unwrap().conditions, "Ready")
        .unwrap()
        .clone();
    assert_eq!(
        (ready.is_true(), ready.reason.as_str()),
        (false, "Applying")
    );
    let ws = workspace_of(&env, &monitoring).await;
    let conditions = ws.status.clone().unwrap().conditions;
    assert!(
        capt_fargate::api::conditions::find(&conditions, "Ready")
            .unwrap()
            .is_true(),
        "the provider leaves Ready as it was: {conditions:?}"
    );
    env.provider.clear_failure("monitoring");
    env.all_ready_within(3, WAIT).await;
    let ws = workspace_of(&env, &monitoring).await;
    assert_eq!(
        ws.spec.for_provider.varmap.as_ref().unwrap()["tags"]["team"],
        json!("observability")
    );
    let applies = env.provider.observations.lock().unwrap().applies.clone();
    assert_eq!(applies.get(&ws.name_any()), Some(&2), "{applies:?}");
    env.stop().await;
}

/// The Secrets the control plane's Workspaces read: the VPC connection Secret (the EKS and
/// profile Workspaces' var file) and the EKS connection Secret (the profiles').
fn read_secrets() -> [String; 2] {
    [
        names::vpc_connection_secret(CP),
        names::eks_connection_secret(CP),
    ]
}

/// Deletes the control plane and the Secrets its Workspaces read together (`kubectl delete`
/// of a cluster's manifests), in the order given, and checks that the teardown finishes with
/// nothing left and never shows a failure: provider-terraform reads var files on deletion
/// too, and the operator keeps every Secret a Workspace reads until that Workspace is gone.
async fn delete_with_secrets(prefix: &str, secrets_first: bool) {
    let env = Env::start(prefix, Duration::from_millis(300)).await;
    env.patch_spec(json!({
        "additionalFargateProfiles": profiles(&[("monitoring", "monitoring")]),
    }))
    .await;
    env.create_vpc_secret().await;
    env.all_ready_within(3, WAIT).await;
    let secrets = read_secrets();
    let delete_secrets = || async {
        for name in &secrets {
            env.secrets()
                .delete(name, &Default::default())
                .await
                .unwrap();
        }
    };
    if secrets_first {
        delete_secrets().await;
        env.cps().delete(CP, &Default::default()).await.unwrap();
    } else {
        env.cps().delete(CP, &Default::default()).await.unwrap();
        delete_secrets().await;
    }
    // Every status seen on the way: none may say that a destroy failed.
    let seen = std::sync::Mutex::new(Vec::new());
    eventually("control plane gone", WAIT, || async {
        let Some(cp) = env.cps().get_opt(CP).await.map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let (failed, reason, message) = condition(&cp, "FargateProfileFailed");
        if failed == "True" || reason == "DeleteFailed" {
            seen.lock().unwrap().push(format!("{reason}: {message}"));
        }
        Err(format!("{:?}", cp.status))
    })
    .await;
    let seen = seen.into_inner().unwrap();
    assert!(seen.is_empty(), "the teardown showed failures: {seen:?}");
    assert!(env.workspaces().await.is_empty(), "no Workspace left");
    assert!(
        env.profile_applies().await.is_empty()
            && env
                .applies()
                .get_opt(&names::eks_apply_name(CP))
                .await
                .unwrap()
                .is_none(),
        "no apply left"
    );
    let order = env
        .provider
        .observations
        .lock()
        .unwrap()
        .destroy_order
        .clone();
    assert_eq!(order.len(), 2, "both Workspaces destroyed: {order:?}");
    // The Secrets the user deleted are gone too, once their last reader was.
    for name in &secrets {
        eventually(&format!("Secret {name} gone"), WAIT, || async {
            match env
                .secrets()
                .get_opt(name)
                .await
                .map_err(|e| e.to_string())?
            {
                None => Ok(()),
                Some(s) => Err(format!("still there: {:?}", s.metadata)),
            }
        })
        .await;
    }
    env.stop().await;
}

#[tokio::test]
async fn deleting_the_control_plane_and_then_its_secrets_finishes() {
    delete_with_secrets("secrets-after", false).await;
}

#[tokio::test]
async fn deleting_the_secrets_and_then_the_control_plane_finishes() {
    delete_with_secrets("secrets-before", true).await;
}

/// A Secret a Workspace reads carries the operator's finalizer while it does, and loses it
/// once the last reader is gone; a Secret that nothing reads any more stays as it is.
#[tokio::test]
async fn a_read_secret_is_guarded_while_read_and_released_after() {
    let env = Env::start("secret-guard", Duration::from_millis(100)).await;
    env.patch_spec(json!({
        "additionalFargateProfiles": profiles(&[("monitoring", "monitoring")]),
    }))
    .await;
    env.create_vpc_secret().await;
    env.all_ready_within(3, WAIT).await;
    let guarded = |s: &k8s_openapi::api::core::v1::Secret| {
        s.finalizers().iter().any(|f| f == names::SECRET_FINALIZER)
    };
    for name in read_secrets() {
        eventually(&format!("Secret {name} guarded"), WAIT, || async {
            let s = env.secrets().get(&name).await.map_err(|e| e.to_string())?;
            if guarded(&s) {
                Ok(())
            } else {
                Err(format!("{:?}", s.metadata.finalizers))
            }
        })
        .await;
    }
    // A profile's connection Secret is written, not read: not guarded.
    let profile_secret =
        names::profile_connection_secret(&env.profile_applies().await[0].name_any());
    let s = env.secrets().get(&profile_secret).await.unwrap();
    assert!(!guarded(&s), "{:?}", s.metadata.finalizers);
    env.cps().delete(CP, &Default::default()).await.unwrap();
    eventually("control plane gone", WAIT, || async {
        match env.cps().get_opt(CP).await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(cp) => Err(format!("{:?}", cp.status)),
        }
    })
    .await;
    // The VPC Secret outlives the control plane, without the finalizer.
    let vpc = names::vpc_connection_secret(CP);
    eventually("VPC Secret released", WAIT, || async {
        let s = env.secrets().get(&vpc).await.map_err(|e| e.to_string())?;
        if guarded(&s) {
            Err(format!("{:?}", s.metadata.finalizers))
        } else {
            Ok(())
        }
    })
    .await;
    env.stop().await;
}

/// provider-terraform kills a reconcile at `--timeout` (20 min by default, covering init, plan
/// and apply): an EKS cluster whose create and two default profiles take 16 + 2 x 3 minutes
/// is killed mid-apply, and finishes at the next reconcile while AWS carries on. The operator
/// shows the kill as transient, with the provider's message and what to do, never as a
/// failure, and the cluster and its profiles become ready (scaled time: 100 ms a minute).
#[tokio::test]
async fn an_apply_killed_at_the_providers_timeout_is_transient_and_explained() {
    let provider = |client, ns: &str, _| {
        let timing = Timing {
            cluster_create: 16.0,
            ..Timing::realistic(Duration::from_millis(100))
        };
        let mode = Mode {
            serial: true,
            rate: 1,
            timing: Some(timing),
        };
        SimulatedProvider::start_in(client, ns, Duration::ZERO, mode)
    };
    let samples = Samples::start_with(
        crate::support::client().await,
        "timeout",
        Duration::ZERO,
        provider,
    )
    .await;
    let operator = Operator::start(samples.client.clone(), &samples.ns.name);
    let env = Env { samples, operator };
    env.create_vpc_secret().await;
    let seen = std::sync::Mutex::new(Vec::<String>::new());
    let total = env
        .cp()
        .await
        .spec
        .additional_fargate_profiles
        .unwrap_or_default()
        .len()
        + 2;
    eventually(
        "every profile ready after the killed apply",
        WAIT,
        || async {
            let cp = env.cp().await;
            let Some(status) = cp.status.clone().filter(|s| {
                let has = |t: &str| s.conditions.iter().any(|c| c.type_ == t);
                has("Ready") && has("FargateProfileFailed")
            }) else {
                return Err("no status yet".to_string());
            };
            let (_, reason, message) = condition(&cp, "Ready");
            let failed = condition(&cp, "FargateProfileFailed").0 == "True"
                || status.failure_reason.is_some()
                || status.phase == Some(ControlPlanePhase::Failed);
            {
                let mut seen = seen.lock().unwrap();
                if failed {
                    seen.push(format!("FAILED: {status:?}"));
                }
                if reason == "TransientError" && !seen.contains(&message) {
                    seen.push(message);
                }
            }
            let ready = status.fargate_profiles.iter().filter(|p| p.ready).count();
            if status.ready && ready == total {
                Ok(())
            } else {
                Err(format!("{status:?}"))
            }
        },
    )
    .await;
    let seen = seen.into_inner().unwrap();
    assert!(
        !seen.iter().any(|m| m.starts_with("FAILED")),
        "shown as a failure: {seen:?}"
    );
    assert!(
        seen.iter().any(|m| m.contains(
            "create failed: cannot apply Terraform configuration: shutdown while running terraform command: context deadline exceeded"
        ) && m.contains("raise --timeout")),
        "the kill was not shown with what to do: {seen:?}"
    );
    // The retry resumed: one apply of the EKS Workspace, no profile operation twice.
    let accepted = env.provider.observations.lock().unwrap().accepted();
    let mut creates: Vec<_> = accepted.iter().map(|(_, p, _)| p.clone()).collect();
    creates.sort();
    creates.dedup();
    assert_eq!(creates.len(), accepted.len(), "{accepted:?}");
    assert!(
        env.provider.overlaps().is_empty(),
        "{:?}",
        env.provider.overlaps()
    );
    env.stop().await;
}

#[tokio::test]
async fn a_transient_eks_error_is_retried_and_holds_profile_operations_a_terminal_one_fails() {
    let env = Env::start("transient", Duration::from_millis(300)).await;
    env.create_vpc_secret().await;
    env.all_ready_within(4, WAIT).await;
    let workspace = env.eks_workspace().await;

    // Throttled: the Ready condition says so, and nothing is terminal.
    env.fail_workspace(&workspace, Some("ThrottlingException: Rate exceeded"))
        .await;
    let cp = eventually(
        "the throttling error in the Ready condition",
        WAIT,
        || async {
            let cp = env.cp().await;
            let (_, reason, _) = condition(&cp, "Ready");
            if reason == "TransientError" {
                Ok(cp)
            } else {
                Err(format!("{:?}", cp.status))
            }
        },
    )
    .await;
    let status = cp.status.clone().unwrap();
    let (ready, _, message) = condition(&cp, "Ready");
    assert_eq!(ready, "False");
    assert!(
        message.contains("ThrottlingException: Rate exceeded"),
        "{message}"
    );
    assert_eq!(status.phase, Some(ControlPlanePhase::Creating));
    assert_eq!(
        (status.failure_reason, status.failure_message),
        (None, None)
    );
    assert_eq!(condition(&cp, "FargateProfileFailed").0, "False");

    // While the EKS workspace retries, no profile operation starts.
    let mut list: Vec<serde_json::Value> = cp
        .spec
        .additional_fargate_profiles
        .clone()
        .unwrap()
        .iter()
        .map(|p| serde_json::to_value(p).unwrap())
        .collect();
    list.push(profile("late", "late"));
    env.patch_spec(json!({ "additionalFargateProfiles": list }))
        .await;
    let late = names::profile_apply_name(CP, "late");
    eventually("late waiting for the cluster", WAIT, || async {
        let cp = env.cp().await;
        match entry(&cp, "late") {
            Some(p) if p.failure_reason.as_deref() == Some("WaitingForCluster") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        env.applies().get_opt(&late).await.unwrap().is_none(),
        "a profile was created while the EKS workspace was applying"
    );

    // Recovered: everything clears and the profile follows.
    env.fail_workspace(&workspace, None).await;
    let cp = env.all_ready_within(5, WAIT).await;
    let status = cp.status.clone().unwrap();
    assert_eq!(status.phase, Some(ControlPlanePhase::Ready));
    assert_eq!(condition(&cp, "Ready").1, "Ready");

    // Access denied needs a person: terminal at once, cleared on recovery.
    env.fail_workspace(
        &workspace,
        Some("AccessDeniedException: User is not authorized to perform: eks:UpdateClusterConfig"),
    )
    .await;
    let cp = eventually("the control plane failed", WAIT, || async {
        let cp = env.cp().await;
        match cp.status.as_ref().and_then(|s| s.phase) {
            Some(ControlPlanePhase::Failed) => Ok(cp),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let status = cp.status.clone().unwrap();
    assert_eq!(status.failure_reason.as_deref(), Some("ReconcileError"));
    assert!(
        status
            .failure_message
            .as_deref()
            .unwrap()
            .contains("AccessDeniedException")
    );
    env.fail_workspace(&workspace, None).await;
    let cp = eventually("recovered", WAIT, || async {
        let cp = env.cp().await;
        match cp.status.as_ref().and_then(|s| s.phase) {
            Some(ControlPlanePhase::Ready) => Ok(cp),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let status = cp.status.unwrap();
    assert_eq!(
        (status.failure_reason, status.failure_message),
        (None, None)
    );
    assert!(env.provider.rejections().is_empty());
    env.stop().await;
}

#[tokio::test]
async fn teardown_goes_in_reverse_spec_order_and_explains_a_failing_destroy() {
    let env = Env::start("teardown", Duration::from_millis(300)).await;
    let spec = [
        ("monitoring", "monitoring"),
        ("batch-jobs", "batch"),
        ("analytics", "analytics"),
        ("web", "web"),
    ];
    env.patch_spec(json!({ "additionalFargateProfiles": profiles(&spec) }))
        .await;
    env.create_vpc_secret().await;
    env.all_ready_within(6, WAIT).await;
    env.provider.inject_failure(
        "analytics",
        "AccessDeniedException: User is not authorized to perform: eks:DeleteFargateProfile",
    );
    env.cps().delete(CP, &Default::default()).await.unwrap();

    let analytics = names::profile_apply_name(CP, "analytics");
    let cp = eventually("the failing destroy in the status", WAIT, || async {
        let cp = env.cp().await;
        match entry(&cp, "analytics") {
            Some(p) if p.failure_reason.as_deref() == Some("DeleteFailed") => Ok(cp),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let status = cp.status.clone().unwrap();
    let failing = entry(&cp, "analytics").unwrap();
    assert_eq!(failing.phase, Some(FargateProfilePhase::Deleting));
    assert!(!failing.ready);
    assert!(
        failing
            .failure_message
            .as_deref()
            .unwrap()
            .contains("AccessDeniedException"),
        "{failing:?}"
    );
    assert!(entry(&cp, "web").is_none(), "web (last) went first");
    for name in ["kube-system", "karpenter", "monitoring", "batch-jobs"] {
        let p = entry(&cp, name).unwrap();
        assert_eq!(
            (p.phase, p.failure_reason.as_deref()),
            (
                Some(FargateProfilePhase::Deleting),
                Some("WaitingForProfile")
            ),
            "{p:?}"
        );
    }
    assert_eq!(status.fargate_profiles_summary.as_deref(), Some("0/5"));
    let (failed, reason, message) = condition(&cp, "FargateProfileFailed");
    assert_eq!((failed.as_str(), reason.as_str()), ("True", "DeleteFailed"));
    assert!(message.contains("AccessDeniedException"), "{message}");
    assert_eq!(condition(&cp, "FargateProfileReady").0, "False");
    let (creating, reason, _) = condition(&cp, "FargateProfileCreating");
    assert_eq!((creating.as_str(), reason.as_str()), ("True", "Deleting"));
    // A Warning about the right profile, and one deletion event per profile, each naming it.
    let warnings = eventually("the warning event", WAIT, || async {
        let events = env.events("FargateProfileDeleteFailed").await;
        if events.is_empty() {
            Err("none yet".to_string())
        } else {
            Ok(events)
        }
    })
    .await;
    assert_eq!(warnings[0].type_.as_deref(), Some("Warning"));
    assert_eq!(
        warnings[0].related.as_ref().and_then(|r| r.name.as_deref()),
        Some(analytics.as_str())
    );
    assert!(
        warnings[0]
            .note
            .as_deref()
            .unwrap()
            .contains("AccessDeniedException")
    );
    let deleting: Vec<(String, String)> = env
        .events("DeletingFargateProfile")
        .await
        .into_iter()
        .map(|e| {
            (
                e.related.and_then(|r| r.name).unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect();
    let mut related: Vec<&str> = deleting.iter().map(|(r, _)| r.as_str()).collect();
    related.sort();
    assert_eq!(
        related,
        [analytics.as_str(), &names::profile_apply_name(CP, "web")],
        "{deleting:?}"
    );
    for (related, note) in &deleting {
        assert!(note.ends_with(related.as_str()), "{note} names {related}");
    }

    // Fixed: the destroy goes on, in reverse spec order, then the cluster.
    env.provider.clear_failure("analytics");
    eventually("control plane gone", WAIT, || async {
        match env.cps().get_opt(CP).await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(cp) => Err(format!("{:?}", cp.status.map(|s| s.fargate_profiles))),
        }
    })
    .await;
    let order = env
        .provider
        .observations
        .lock()
        .unwrap()
        .destroy_order
        .clone();
    let ws = |apply: String| names::workspace_name(&env.ns.name, &apply);
    let mut expected: Vec<String> = ["web", "analytics", "batch-jobs", "monitoring"]
        .into_iter()
        .map(|p| ws(names::profile_apply_name(CP, p)))
        .collect();
    expected.push(ws(names::eks_apply_name(CP)));
    assert_eq!(order, expected, "reverse spec order, then the cluster");
    assert!(env.provider.rejections().is_empty());
    env.stop().await;
}

#[tokio::test]
async fn deleting_mid_rollout_waits_for_the_create_in_flight() {
    let env = Env::start("mid-rollout", Duration::from_secs(4)).await;
    env.create_vpc_secret().await;
    let monitoring = names::profile_apply_name(CP, "monitoring");
    env.until_being_created(&monitoring).await;
    env.cps().delete(CP, &Default::default()).await.unwrap();
    // Nothing is deleted while monitoring is being created; the status says why.
    let cp = eventually("the status of a teardown that waits", WAIT, || async {
        let cp = env.cp().await;
        match entry(&cp, "monitoring") {
            Some(p)
                if p.failure_message
                    .as_deref()
                    .unwrap_or("")
                    .contains("being deleted") =>
            {
                Ok(cp)
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let m = entry(&cp, "monitoring").unwrap();
    assert_eq!(m.phase, Some(FargateProfilePhase::Creating), "{m:?}");
    loop {
        let a = env.applies().get_opt(&monitoring).await.unwrap();
        // Once ready (or gone), teardown may go on.
        if a.as_ref()
            .is_none_or(|a| child_state(a) == ChildState::Ready)
        {
            break;
        }
        for other in env.applies().list(&ListParams::default()).await.unwrap() {
            assert!(
                other.metadata.deletion_timestamp.is_none(),
                "{} deleted while monitoring was being created",
                other.name_any()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eventually("control plane gone", WAIT, || async {
        match env.cps().get_opt(CP).await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(cp) => Err(format!("{:?}", cp.status.map(|s| s.fargate_profiles))),
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
    {
        let obs = env.provider.observations.lock().unwrap();
        let ws = |apply: String| names::workspace_name(&env.ns.name, &apply);
        assert_eq!(
            obs.applies.get(&ws(monitoring.clone())),
            Some(&1),
            "monitoring's create finished before its destroy: {:?}",
            obs.applies
        );
        assert_eq!(
            obs.destroy_order,
            [ws(monitoring.clone()), ws(names::eks_apply_name(CP))]
        );
        assert!(
            !obs.applies
                .contains_key(&ws(names::profile_apply_name(CP, "batch-jobs"))),
            "batch-jobs was never created"
        );
        assert!(obs.overlaps().is_empty(), "{:?}", obs.overlaps());
    }
    env.stop().await;
}
