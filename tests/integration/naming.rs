//! Derived names on the real control plane: control planes whose names concatenate alike get
//! distinct applies, an apply created under an earlier naming rule is kept, and an apply name
//! taken by someone else's object is reported in the status and leaves that object alone.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use capt_fargate::api::{
    CAPTControlPlane, FargateProfile, FargateProfilePhase, FargateProfileStatus,
    WorkspaceTemplateApply,
};
use capt_fargate::names;
use capt_fargate::render::{self, fargate};

use crate::support::simulated_provider::SimulatedProvider;
use crate::support::{self, Operator, TestNamespace, eventually};

const WAIT: Duration = Duration::from_secs(60);

/// A namespace with the shipped templates and the simulated provider.
struct Env {
    client: Client,
    ns: TestNamespace,
    provider: SimulatedProvider,
}

impl Env {
    async fn start(prefix: &str) -> Env {
        let client = support::client().await;
        let ns = TestNamespace::new(&client, prefix).await;
        let root = support::repo_root();
        support::apply_yaml(&client, &ns.name, &root.join("config/workspacetemplates")).await;
        let provider =
            SimulatedProvider::start(client.clone(), &ns.name, Duration::from_millis(200));
        Env {
            client,
            ns,
            provider,
        }
    }

    async fn stop(self) {
        self.provider.stop().await;
        self.ns.delete().await;
    }

    fn cps(&self) -> Api<CAPTControlPlane> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    fn applies(&self) -> Api<WorkspaceTemplateApply> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    /// The control plane `name` with one additional profile `profile`, and its VPC secret (as
    /// the VPC workspace would write it).
    async fn create_control_plane(&self, name: &str, profile: &str) -> CAPTControlPlane {
        self.create_control_plane_with(name, vec![profile_spec(profile)])
            .await
    }

    /// The control plane `name` with these additional profiles, and its VPC secret.
    async fn create_control_plane_with(
        &self,
        name: &str,
        profiles: Vec<Value>,
    ) -> CAPTControlPlane {
        let text =
            std::fs::read_to_string(support::repo_root().join("config/samples/secrets.yaml"))
                .unwrap();
        let doc = text
            .split("\n---")
            .find(|d| d.contains("-vpc-connection"))
            .expect("sample VPC secret");
        let mut secret: Secret = serde_saphyr::from_str(doc).unwrap();
        secret.metadata.name = Some(names::vpc_connection_secret(name));
        secret.metadata.namespace = Some(self.ns.name.clone());
        Api::<Secret>::namespaced(self.client.clone(), &self.ns.name)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
        let cp: CAPTControlPlane = serde_json::from_value(json!({
            "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1",
            "kind": "CAPTControlPlane",
            "metadata": { "name": name },
            "spec": {
                "version": "1.31",
                "workspaceTemplateRef": { "name": "eks-controlplane" },
                "defaultFargateProfiles": ["kube-system"],
                "additionalFargateProfiles": profiles
            }
        }))
        .unwrap();
        self.cps()
            .create(&PostParams::default(), &cp)
            .await
            .unwrap()
    }

    /// Waits until `profile`'s status entry of control plane `cp` satisfies `done`.
    async fn profile_status(
        &self,
        cp: &str,
        profile: &str,
        what: &str,
        done: impl Fn(&FargateProfileStatus) -> bool,
    ) -> CAPTControlPlane {
        let api = self.cps();
        eventually(&format!("{cp}/{profile}: {what}"), WAIT, || {
            let api = api.clone();
            let done = &done;
            async move {
                let c = api.get(cp).await.map_err(|e| e.to_string())?;
                let entry = c
                    .status
                    .as_ref()
                    .and_then(|s| s.fargate_profiles.iter().find(|p| p.name == profile))
                    .cloned();
                match entry {
                    Some(e) if done(&e) => Ok(c),
                    other => Err(format!("{other:?}")),
                }
            }
        })
        .await
    }
}

/// An additional profile named `name`.
fn profile_spec(name: &str) -> Value {
    json!({
        "name": name,
        "selectors": [{ "namespace": "apps" }],
        "workspaceTemplateRef": { "name": "eks-fargate-profile" }
    })
}

fn is_ready(s: &FargateProfileStatus) -> bool {
    s.phase == Some(FargateProfilePhase::Ready)
}

#[tokio::test]
async fn control_planes_whose_names_concatenate_alike_both_converge() {
    let env = Env::start("naming-pairs").await;
    env.create_control_plane("shop", "fargate-api").await;
    env.create_control_plane("shop-fargate", "api").await;
    let operator = Operator::start(env.client.clone(), &env.ns.name);

    let shop = env
        .profile_status("shop", "fargate-api", "Ready", is_ready)
        .await;
    let shop_fargate = env
        .profile_status("shop-fargate", "api", "Ready", is_ready)
        .await;
    let apply_of = |cp: &CAPTControlPlane, profile: &str| {
        cp.status
            .as_ref()
            .unwrap()
            .fargate_profiles
            .iter()
            .find(|p| p.name == profile)
            .and_then(|p| p.workspace_template_apply_name.clone())
            .unwrap()
    };
    let a = apply_of(&shop, "fargate-api");
    let b = apply_of(&shop_fargate, "api");
    assert_ne!(a, b, "each control plane has its own apply");
    assert_eq!(a, names::profile_apply_name("shop", "fargate-api"));
    assert_eq!(b, names::profile_apply_name("shop-fargate", "api"));
    // Each apply belongs to its own control plane and names its own profile.
    for (apply, cp, profile) in [(&a, &shop, "fargate-api"), (&b, &shop_fargate, "api")] {
        let obj = env.applies().get(apply).await.unwrap();
        assert_eq!(obj.owner_references()[0].uid, cp.uid().unwrap(), "{apply}");
        assert_eq!(obj.annotations()[names::ANNOTATION_PROFILE_NAME], profile);
        let tv = obj.spec.terraform_values();
        assert_eq!(tv["cluster_name"], json!(cp.name_any()));
        assert_eq!(tv["profile_name"], json!(profile));
    }
    assert!(
        env.provider.rejections().is_empty(),
        "{:?}",
        env.provider.rejections()
    );
    operator.stop().await;
    env.stop().await;
}

#[tokio::test]
async fn an_apply_created_under_the_earlier_name_is_kept() {
    let env = Env::start("naming-upgrade").await;
    let mut cp = env.create_control_plane_with("shop", vec![]).await;
    let operator = Operator::start(env.client.clone(), &env.ns.name);
    env.profile_status("shop", "kube-system", "Ready", is_ready)
        .await;
    // A cluster converged by an earlier version: its profile's apply has the name of the
    // earlier rule (`<cp>-fargate-<profile>`) and is owned by the control plane.
    let old_name = "shop-fargate-api";
    let profile: FargateProfile = serde_json::from_value(profile_spec("api")).unwrap();
    cp.spec.additional_fargate_profiles = Some(vec![profile.clone()]);
    let eks_workspace = names::workspace_name(&env.ns.name, &render::eks::apply_name(&cp));
    let old = fargate::render_as(&cp, &profile, old_name, &eks_workspace);
    let old = env
        .applies()
        .create(&PostParams::default(), &old)
        .await
        .unwrap();
    env.cps()
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "spec": { "additionalFargateProfiles": [profile_spec("api")] } }),
            ),
        )
        .await
        .unwrap();

    let status = env.profile_status("shop", "api", "Ready", is_ready).await;
    let entry = &status.status.as_ref().unwrap().fargate_profiles[1];
    assert_eq!(
        entry.workspace_template_apply_name.as_deref(),
        Some(old_name)
    );
    let profile_applies: Vec<String> = env
        .applies()
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|a| {
            a.labels().get(names::LABEL_COMPONENT).map(String::as_str)
                == Some(names::COMPONENT_FARGATE_PROFILE)
        })
        .map(|a| a.name_any())
        .collect();
    assert_eq!(
        profile_applies,
        [old_name],
        "no second apply for the profile"
    );
    let kept = env.applies().get(old_name).await.unwrap();
    assert_eq!(kept.uid(), old.uid(), "the same apply, never deleted");
    assert!(kept.metadata.deletion_timestamp.is_none());
    operator.stop().await;
    env.stop().await;
}

#[tokio::test]
async fn an_apply_name_taken_by_another_object_is_reported_and_left_alone() {
    let env = Env::start("naming-taken").await;
    // Someone else's apply, of the name the operator derives for shop/api, without an owner.
    let taken = names::profile_apply_name("shop", "api");
    let foreign: WorkspaceTemplateApply = serde_json::from_value(json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
        "kind": "WorkspaceTemplateApply",
        "metadata": {
            "name": taken,
            "labels": { "team": "someone-else" },
            "annotations": { "note": "not the operator's" }
        },
        "spec": {
            "templateRef": { "name": "not-installed" },
            "variables": { "owner": "someone-else" }
        }
    }))
    .unwrap();
    let foreign = env
        .applies()
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    env.create_control_plane("shop", "api").await;
    let operator = Operator::start(env.client.clone(), &env.ns.name);

    let cp = env
        .profile_status("shop", "api", "Failed with ApplyNameConflict", |s| {
            s.phase == Some(FargateProfilePhase::Failed)
                && s.failure_reason.as_deref() == Some("ApplyNameConflict")
        })
        .await;
    let status = cp.status.clone().unwrap();
    let entry = status
        .fargate_profiles
        .iter()
        .find(|p| p.name == "api")
        .unwrap();
    let message = entry.failure_message.clone().unwrap();
    assert!(
        message.contains(&taken) && message.contains("no controller owner"),
        "{message}"
    );
    assert_eq!(
        entry.workspace_template_apply_name.as_deref(),
        Some(taken.as_str())
    );
    let failed = status
        .conditions
        .iter()
        .find(|c| c.type_ == "FargateProfileFailed")
        .unwrap();
    assert_eq!(
        (failed.status.as_str(), failed.reason.as_str()),
        ("True", "ApplyNameConflict")
    );
    assert!(failed.message.contains(&taken), "{}", failed.message);

    // A Warning event on the control plane says it too (kubectl describe).
    let events: Api<Event> = Api::namespaced(env.client.clone(), &env.ns.name);
    eventually("a Warning event naming the conflict", WAIT, || {
        let events = events.clone();
        let taken = taken.clone();
        async move {
            let list = events
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            list.items
                .iter()
                .find(|e| {
                    e.type_.as_deref() == Some("Warning")
                        && e.note.as_deref().is_some_and(|n| n.contains(&taken))
                })
                .map(|_| ())
                .ok_or_else(|| format!("{} events", list.items.len()))
        }
    })
    .await;
    assert!(
        operator.metrics.encode().contains("not_owned"),
        "the failure is counted in capt_fargate_reconcile_errors_total"
    );

    // Nothing of the other object was overwritten.
    let after = env.applies().get(&taken).await.unwrap();
    assert_eq!(
        serde_json::to_value(&after.spec).unwrap(),
        serde_json::to_value(&foreign.spec).unwrap()
    );
    assert!(after.owner_references().is_empty());
    assert_eq!(after.labels(), foreign.labels());
    assert_eq!(after.annotations(), foreign.annotations());
    let value: Value = serde_json::to_value(&after).unwrap();
    assert!(
        !value["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["manager"] == names::FIELD_MANAGER
                && f["subresource"].is_null()
                && f["fieldsV1"].get("f:spec").is_some()),
        "the operator wrote the other object's spec: {}",
        value["metadata"]["managedFields"]
    );
    operator.stop().await;
    env.stop().await;
}
