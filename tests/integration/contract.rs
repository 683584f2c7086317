//! The Cluster API control-plane contract on the real API server: the fields and conditions
//! of both contract versions, `Available` following the EKS workspace, pause, the template
//! CRD and the watch filter.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};
use serde_json::json;

use capt_fargate::api::{CAPTControlPlane, Workspace};
use capt_fargate::names;

use crate::support::audit::{self, AuditLog};
use crate::support::samples::{CP, Samples, profile};
use crate::support::simulated_provider::FAIL_ANNOTATION;
use crate::support::{Operator, eventually};

const WAIT: Duration = Duration::from_secs(60);

fn condition(cp: &CAPTControlPlane, type_: &str) -> Option<(String, String, String, Option<i64>)> {
    let c = cp
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((
        c.status.clone(),
        c.reason.clone(),
        c.message.clone(),
        c.observed_generation,
    ))
}

/// The control plane as Cluster API reads it: unstructured, by the contract's field paths.
async fn raw(samples: &Samples) -> serde_json::Value {
    let cp = samples.cps().get(CP).await.unwrap();
    serde_json::to_value(cp).unwrap()
}

#[tokio::test]
async fn a_converged_control_plane_reports_both_contracts() {
    let samples = Samples::start("contract", Duration::from_millis(200)).await;
    let operator = Operator::start(samples.client.clone(), &samples.ns.name);
    samples.create_vpc_secret().await;
    let cp = samples.all_ready_within(4, WAIT).await;
    let generation = cp.metadata.generation;

    // The contract labels, on the CRDs the API server serves.
    let crds: Api<CustomResourceDefinition> = Api::all(samples.client.clone());
    for crd in [
        "captcontrolplanes.controlplane.cluster.x-k8s.io",
        "captcontrolplanetemplates.controlplane.cluster.x-k8s.io",
    ] {
        let labels = crds.get(crd).await.unwrap().labels().clone();
        assert_eq!(labels["cluster.x-k8s.io/v1beta2"], "v1beta1", "{crd}");
        assert_eq!(labels["cluster.x-k8s.io/v1beta1"], "v1beta1", "{crd}");
        assert_eq!(labels["clusterctl.cluster.x-k8s.io"], "", "{crd}");
    }

    // The fields, at the paths Cluster API v1.14 reads (internal/contract/controlplane.go).
    let v = raw(&samples).await;
    let status = &v["status"];
    assert_eq!(
        status["initialization"]["controlPlaneInitialized"],
        json!(true)
    );
    assert_eq!(status["initialized"], json!(true));
    assert_eq!(status["ready"], json!(true));
    assert_eq!(status["externalManagedControlPlane"], json!(true));
    // The sample asks for 1.31; the EKS workspace's cluster_version output reports it.
    assert_eq!(status["version"], json!("1.31"));
    assert_eq!(status["versions"], json!([{ "version": "1.31" }]));
    let eks = samples
        .applies()
        .get(&names::eks_apply_name(CP))
        .await
        .unwrap();
    let outputs = eks.status.unwrap().outputs.unwrap();
    assert_eq!(outputs["cluster_version"], "1.31");

    for (type_, want, reason) in [
        ("Available", "True", "Available"),
        ("Ready", "True", "Ready"),
        ("Paused", "False", "NotPaused"),
        ("Deleting", "False", "NotDeleting"),
        ("FargateProfileReady", "True", "AllProfilesReady"),
    ] {
        let (status, why, _, observed) =
            condition(&cp, type_).unwrap_or_else(|| panic!("no {type_} condition"));
        assert_eq!(
            (status.as_str(), why.as_str(), observed),
            (want, reason, generation),
            "{type_}"
        );
    }
    operator.stop().await;
    samples.stop().await;
}

#[tokio::test]
async fn available_turns_false_when_the_eks_workspace_fails_and_initialized_stays() {
    let samples = Samples::start("available", Duration::from_millis(200)).await;
    let operator = Operator::start(samples.client.clone(), &samples.ns.name);
    samples.create_vpc_secret().await;
    samples.all_ready_within(4, WAIT).await;
    let eks = names::eks_apply_name(CP);
    let workspace = samples
        .workspaces()
        .await
        .into_iter()
        .find(|w| w.annotations()[names::ANNOTATION_APPLY].ends_with(&format!("/{eks}")))
        .expect("the EKS Workspace")
        .name_any();
    let message =
        "AccessDeniedException: User is not authorized to perform: eks:UpdateClusterConfig";
    let workspaces: Api<Workspace> = Api::all(samples.client.clone());
    let fail = |message: Option<&str>| json!({ "metadata": { "annotations": { FAIL_ANNOTATION: message } } });
    workspaces
        .patch(
            &workspace,
            &PatchParams::default(),
            &Patch::Merge(&fail(Some(message))),
        )
        .await
        .unwrap();

    let cp = eventually("Available=False", WAIT, || async {
        let cp = samples.cps().get(CP).await.map_err(|e| e.to_string())?;
        match condition(&cp, "Available") {
            Some((s, ..)) if s == "False" => Ok(cp),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let (_, reason, text, observed) = condition(&cp, "Available").unwrap();
    assert_eq!(reason, "WorkspaceError");
    assert!(text.contains("AccessDeniedException"), "{text}");
    assert_eq!(observed, cp.metadata.generation);
    // Initialization is a one-way flag in both contracts.
    let v = raw(&samples).await;
    assert_eq!(
        v["status"]["initialization"]["controlPlaneInitialized"],
        json!(true)
    );
    assert_eq!(v["status"]["initialized"], json!(true));
    assert_eq!(v["status"]["ready"], json!(false));

    workspaces
        .patch(
            &workspace,
            &PatchParams::default(),
            &Patch::Merge(&fail(None)),
        )
        .await
        .unwrap();
    eventually("Available=True again", WAIT, || async {
        let cp = samples.cps().get(CP).await.map_err(|e| e.to_string())?;
        match condition(&cp, "Available") {
            Some((s, ..)) if s == "True" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    operator.stop().await;
    samples.stop().await;
}

/// A client of the test cluster that the audit log names `user`.
async fn client_as(user: &str) -> Client {
    let path = audit::kubeconfig_for_user(user, None).await;
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// Waits for the control plane's `Paused` condition to be `want`.
async fn paused_is(samples: &Samples, want: &str) -> CAPTControlPlane {
    eventually(&format!("Paused={want}"), WAIT, || async {
        let cp = samples.cps().get(CP).await.map_err(|e| e.to_string())?;
        match condition(&cp, "Paused") {
            Some((s, ..)) if s == want => Ok(cp),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// Sets the sample Cluster's `spec.paused`.
async fn pause_cluster(samples: &Samples, paused: bool) {
    let ar = kube::api::ApiResource {
        group: "cluster.x-k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "cluster.x-k8s.io/v1beta1".into(),
        kind: "Cluster".into(),
        plural: "clusters".into(),
    };
    let clusters: Api<DynamicObject> =
        Api::namespaced_with(samples.client.clone(), &samples.ns.name, &ar);
    clusters
        .patch(
            CP,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "paused": paused } })),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_paused_cluster_or_annotation_stops_every_child_write_until_unpaused() {
    let samples = Samples::start("pause", Duration::from_millis(200)).await;
    let ns = samples.ns.name.clone();
    let user = format!("operator-{ns}");
    let operator = Operator::start(client_as(&user).await, &ns);
    samples.create_vpc_secret().await;
    samples.all_ready_within(4, WAIT).await;

    // The sample Cluster (it names the control plane in controlPlaneRef) is paused.
    pause_cluster(&samples, true).await;
    let cp = paused_is(&samples, "True").await;
    let (_, reason, message, _) = condition(&cp, "Paused").unwrap();
    assert_eq!(reason, "Paused");
    assert!(
        message.contains(&format!("Cluster {CP} is paused")),
        "{message}"
    );
    let before = samples.provider.overlaps();

    // While paused: a new profile, a removed one, and a changed profile template (which every
    // profile Workspace renders) change nothing.
    let log = AuditLog::open().await;
    samples
        .patch_spec(json!({ "additionalFargateProfiles": [profile("monitoring", "monitoring"), profile("late", "late")] }))
        .await;
    let templates: Api<DynamicObject> = Api::namespaced_with(
        samples.client.clone(),
        &ns,
        &kube::api::ApiResource {
            group: "infrastructure.cluster.x-k8s.io".into(),
            version: "v1beta1".into(),
            api_version: "infrastructure.cluster.x-k8s.io/v1beta1".into(),
            kind: "WorkspaceTemplate".into(),
            plural: "workspacetemplates".into(),
        },
    );
    let template = templates.get("eks-fargate-profile").await.unwrap();
    let marker = "# changed while paused";
    let module = template.data["spec"]["template"]["spec"]["forProvider"]["module"]
        .as_str()
        .unwrap()
        .to_string();
    templates
        .patch(
            "eks-fargate-profile",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "template": { "spec": { "forProvider": { "module": format!("{module}{marker}\n") } } } } })),
        )
        .await
        .unwrap();
    let late = names::profile_apply_name(CP, "late");
    let batch = names::profile_apply_name(CP, "batch-jobs");
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The annotation pauses as well: the Cluster is unpaused, the annotation keeps it paused.
    samples
        .cps()
        .patch(
            CP,
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "annotations": { "cluster.x-k8s.io/paused": "" } } }),
            ),
        )
        .await
        .unwrap();
    pause_cluster(&samples, false).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cp = paused_is(&samples, "True").await;
    let (_, _, message, _) = condition(&cp, "Paused").unwrap();
    assert!(message.contains("cluster.x-k8s.io/paused"), "{message}");
    // Paused, the Workspaces are paused in provider-terraform too (see `hand_over`): the
    // same objects, annotated, and the provider confirms; nothing is deleted.
    let paused_workspaces: Vec<Workspace> = samples.workspaces().await;
    assert_eq!(
        paused_workspaces.len(),
        3,
        "the EKS and two profile Workspaces"
    );
    let eks_uid = paused_workspaces
        .iter()
        .find(|w| !w.annotations()[names::ANNOTATION_APPLY].contains("-fargate-"))
        .and_then(|w| w.uid())
        .expect("the EKS Workspace");
    eventually("every Workspace paused and confirmed", WAIT, || async {
        let workspaces = samples.workspaces().await;
        let unconfirmed: Vec<String> = workspaces
            .iter()
            .filter(|w| {
                let paused = w
                    .annotations()
                    .get("crossplane.io/paused")
                    .map(String::as_str)
                    == Some("true");
                let confirmed = w.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Synced" && c.reason == "ReconcilePaused")
                });
                !(paused && confirmed)
            })
            .map(|w| w.name_any())
            .collect();
        if unconfirmed.is_empty() && workspaces.len() == 3 {
            Ok(())
        } else {
            Err(format!("{unconfirmed:?} of {}", workspaces.len()))
        }
    })
    .await;
    eventually("no apply blocks a move", WAIT, || async {
        let applies = samples
            .applies()
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?
            .items;
        let blocking: Vec<String> = applies
            .iter()
            .filter(|a| a.annotations().contains_key(names::BLOCK_MOVE_ANNOTATION))
            .map(|a| a.name_any())
            .collect();
        if blocking.is_empty() {
            Ok(())
        } else {
            Err(format!("{blocking:?}"))
        }
    })
    .await;
    let operator_writes: Vec<_> = log
        .writes()
        .into_iter()
        .filter(|w| w.user == user && w.succeeded())
        .collect();
    // The only child writes: the pause of every Workspace (annotations; no delete), its
    // connection Secret handed to the apply, and the applies' annotations (released,
    // block-move dropped).
    let children: Vec<_> = operator_writes
        .iter()
        .filter(|w| w.resource != "captcontrolplanes" && w.resource != "events")
        .filter(|w| {
            !(w.verb == "patch"
                && ["workspaces", "workspacetemplateapplies", "secrets"]
                    .contains(&w.resource.as_str()))
        })
        .collect();
    assert!(
        children.is_empty(),
        "child writes while paused: {:?}",
        audit::count(&operator_writes)
    );
    assert!(
        samples
            .provider
            .observations
            .lock()
            .unwrap()
            .destroys
            .is_empty(),
        "paused, not destroyed"
    );
    assert!(
        operator_writes
            .iter()
            .all(|w| w.resource != "captcontrolplanes" || w.kind() == "captcontrolplanes/status"),
        "only the status while paused: {:?}",
        audit::count(&operator_writes)
    );
    assert!(samples.applies().get_opt(&late).await.unwrap().is_none());
    assert!(samples.applies().get_opt(&batch).await.unwrap().is_some());
    assert_eq!(samples.provider.overlaps(), before);

    // Unpaused: it converges to the new spec.
    samples
        .cps()
        .patch(
            CP,
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "annotations": { "cluster.x-k8s.io/paused": null } } }),
            ),
        )
        .await
        .unwrap();
    let cp = samples.all_ready_within(4, WAIT).await;
    let names: Vec<_> = cp
        .status
        .unwrap()
        .fargate_profiles
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["kube-system", "karpenter", "monitoring", "late"]);
    let cp = paused_is(&samples, "False").await;
    assert_eq!(condition(&cp, "Paused").unwrap().1, "NotPaused");
    eventually("batch-jobs deleted", WAIT, || async {
        match samples.applies().get_opt(&batch).await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(samples.provider.overlaps().is_empty());
    // The EKS Workspace is the same object (the changed profile was replaced), and no
    // Workspace keeps a pause.
    eventually(
        "the pause lifted from the same Workspaces",
        WAIT,
        || async {
            let workspaces = samples.workspaces().await;
            let eks_kept = workspaces
                .iter()
                .any(|w| w.uid().as_ref() == Some(&eks_uid));
            let still_paused = workspaces
                .iter()
                .filter(|w| {
                    w.annotations().contains_key("crossplane.io/paused")
                        || w.annotations()
                            .contains_key(names::WORKSPACE_PAUSED_ANNOTATION)
                })
                .count();
            if eks_kept && still_paused == 0 {
                Ok(())
            } else {
                Err(format!(
                    "EKS Workspace kept: {eks_kept}, {still_paused} still paused"
                ))
            }
        },
    )
    .await;
    // The template change held during the pause reaches the profile Workspaces.
    eventually(
        "the changed template in the profile Workspaces",
        WAIT,
        || async {
            let profile_workspaces: Vec<_> = samples
                .workspaces()
                .await
                .into_iter()
                .filter(|w| w.annotations()[names::ANNOTATION_APPLY].contains("-fargate-"))
                .collect();
            let changed = profile_workspaces
                .iter()
                .filter(|w| w.spec.for_provider.module.contains(marker))
                .count();
            if changed == 2 && profile_workspaces.len() == 2 {
                Ok(())
            } else {
                Err(format!("{changed} of {} changed", profile_workspaces.len()))
            }
        },
    )
    .await;
    operator.stop().await;
    samples.stop().await;
}

/// A Workspace someone pauses by hand (`crossplane.io/paused`) makes provider-terraform report
/// `Synced=False/ReconcilePaused`: its apply and profile say so, and nothing counts it as a
/// failure (a failureReason would be terminal for Cluster API).
#[tokio::test]
async fn a_workspace_paused_by_hand_is_reported_paused_not_failed() {
    let samples = Samples::start("hand-pause", Duration::from_millis(200)).await;
    let operator = Operator::start(samples.client.clone(), &samples.ns.name);
    samples.create_vpc_secret().await;
    samples.all_ready_within(4, WAIT).await;
    let ws = samples
        .workspaces()
        .await
        .into_iter()
        .find(|w| w.annotations()[names::ANNOTATION_APPLY].contains("-fargate-"))
        .expect("a profile Workspace");
    let apply_name = ws.annotations()[names::ANNOTATION_APPLY]
        .split_once('/')
        .unwrap()
        .1
        .to_string();
    let workspaces: Api<Workspace> = Api::all(samples.client.clone());
    let pause = |value: Option<&str>| json!({ "metadata": { "annotations": { "crossplane.io/paused": value } } });
    workspaces
        .patch(
            &ws.name_any(),
            &PatchParams::default(),
            &Patch::Merge(pause(Some("true"))),
        )
        .await
        .unwrap();
    eventually("the apply reports ReconcilePaused", WAIT, || async {
        let apply = samples
            .applies()
            .get(&apply_name)
            .await
            .map_err(|e| e.to_string())?;
        let conditions = apply.status.map(|s| s.conditions).unwrap_or_default();
        let reasons: Vec<String> = conditions
            .iter()
            .map(|c| format!("{}={}", c.type_, c.reason))
            .collect();
        if reasons.contains(&"Synced=ReconcilePaused".to_string())
            && reasons.contains(&"Ready=ReconcilePaused".to_string())
        {
            Ok(())
        } else {
            Err(format!("{reasons:?}"))
        }
    })
    .await;
    // Some time for the control plane to report it; no failure at any point.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cp = samples.cps().get(CP).await.unwrap();
    let status = cp.status.clone().unwrap();
    assert_eq!(status.failure_reason, None, "{:?}", status.failure_message);
    assert_ne!(
        condition(&cp, "FargateProfileFailed").map(|c| c.0),
        Some("True".to_string()),
        "{:?}",
        condition(&cp, "FargateProfileFailed")
    );
    // Unpaused by hand, it is Ready again.
    workspaces
        .patch(
            &ws.name_any(),
            &PatchParams::default(),
            &Patch::Merge(pause(None)),
        )
        .await
        .unwrap();
    samples.all_ready_within(4, WAIT).await;
    operator.stop().await;
    samples.stop().await;
}

#[tokio::test]
async fn a_paused_control_plane_being_deleted_waits_for_unpause() {
    let samples = Samples::start("pause-delete", Duration::from_millis(200)).await;
    let operator = Operator::start(samples.client.clone(), &samples.ns.name);
    samples.create_vpc_secret().await;
    samples.all_ready_within(4, WAIT).await;
    pause_cluster(&samples, true).await;
    paused_is(&samples, "True").await;
    samples.cps().delete(CP, &Default::default()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // No teardown step: every apply is still there, none is being deleted.
    let applies = samples
        .applies()
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    assert_eq!(
        applies.len(),
        3,
        "{:?}",
        applies.iter().map(|a| a.name_any()).collect::<Vec<_>>()
    );
    assert!(
        applies
            .iter()
            .all(|a| a.metadata.deletion_timestamp.is_none())
    );
    assert!(samples.cps().get_opt(CP).await.unwrap().is_some());

    pause_cluster(&samples, false).await;
    eventually(
        "the control plane gone",
        Duration::from_secs(90),
        || async {
            match samples.cps().get_opt(CP).await {
                Ok(None) => Ok(()),
                other => Err(format!("{:?}", other.map(|o| o.map(|c| c.status)))),
            }
        },
    )
    .await;
    assert!(
        samples
            .applies()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    operator.stop().await;
    samples.stop().await;
}

#[tokio::test]
async fn the_watch_filter_leaves_unlabelled_control_planes_alone() {
    let samples = Samples::start("watch-filter", Duration::from_millis(200)).await;
    let ns = samples.ns.name.clone();
    let operator = Operator::start_with(samples.client.clone(), &ns, |ctx| {
        ctx.watch_filter = Some("team-a".into());
    });
    samples.create_vpc_secret().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let eks = names::eks_apply_name(CP);
    assert!(
        samples.applies().get_opt(&eks).await.unwrap().is_none(),
        "an unlabelled control plane was reconciled"
    );
    assert!(samples.cps().get(CP).await.unwrap().status.is_none());

    // Labelled for this instance: reconciled, and its children carry the label too.
    samples
        .cps()
        .patch(
            CP,
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "labels": { "cluster.x-k8s.io/watch-filter": "team-a" } } }),
            ),
        )
        .await
        .unwrap();
    samples.all_ready_within(4, WAIT).await;
    let applies = samples
        .applies()
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    assert_eq!(applies.len(), 3);
    for apply in &applies {
        assert_eq!(
            apply
                .labels()
                .get("cluster.x-k8s.io/watch-filter")
                .map(String::as_str),
            Some("team-a"),
            "{}",
            apply.name_any()
        );
    }
    operator.stop().await;
    samples.stop().await;
}

#[tokio::test]
async fn the_template_sample_applies_with_the_fargate_fields() {
    let client = crate::support::client().await;
    let ns = crate::support::TestNamespace::new(&client, "cp-template").await;
    let root = crate::support::repo_root();
    let applied = crate::support::apply_yaml(
        &client,
        &ns.name,
        &root.join("config/samples/captcontrolplanetemplate.yaml"),
    )
    .await;
    assert_eq!(
        applied,
        [(
            "CAPTControlPlaneTemplate".to_string(),
            "eks-fargate-template".to_string()
        )]
    );
    let ar = kube::api::ApiResource {
        group: "controlplane.cluster.x-k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "controlplane.cluster.x-k8s.io/v1beta1".into(),
        kind: "CAPTControlPlaneTemplate".into(),
        plural: "captcontrolplanetemplates".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &ar);
    let stored = api.get("eks-fargate-template").await.unwrap();
    let spec = &stored.data["spec"]["template"]["spec"];
    assert_eq!(spec["version"], json!("1.31"));
    assert_eq!(
        spec["additionalFargateProfiles"][0]["name"],
        json!("monitoring")
    );
    assert_eq!(spec["defaultFargateProfiles"], json!(["kube-system"]));

    // The control plane's admission rules hold in the template too.
    let mut bad = stored.clone();
    bad.metadata.resource_version = None;
    bad.metadata.managed_fields = None;
    bad.data["spec"]["template"]["spec"]["additionalFargateProfiles"][0]["name"] = json!("eks-x");
    let err = api
        .patch(
            "eks-fargate-template",
            &PatchParams::apply("capt-fargate-tests").force(),
            &Patch::Apply(&bad),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("reserved by AWS"), "{err}");
    ns.delete().await;
}
