//! The WorkspaceTemplateApply controller on its own: Workspace creation, updates when the
//! template or variables change, waiting, conflicts, and deletion or retention.

use std::time::Duration;

use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use capt_fargate::api::conditions::find;
use capt_fargate::api::{Workspace, WorkspaceTemplate, WorkspaceTemplateApply};
use capt_fargate::names;

use crate::support::{self, Operator, TestNamespace, eventually};

const WAIT: Duration = Duration::from_secs(30);

fn template(ns: &str, module: &str) -> WorkspaceTemplate {
    serde_json::from_value(json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "WorkspaceTemplate",
        "metadata": { "name": "tpl", "namespace": ns },
        "spec": { "template": { "spec": {
            "providerConfigRef": { "name": "aws" },
            "forProvider": {
                "source": "Inline",
                "module": module,
                "vars": [{ "key": "name", "value": "${name}" }],
                "varFiles": [{ "source": "SecretKey", "secretKeyRef": { "namespace": ns, "name": "${WORKSPACE_NAME}-in", "key": "k" } }]
            }
        } } }
    }))
    .unwrap()
}

fn apply(ns: &str, name: &str, vars: serde_json::Value) -> WorkspaceTemplateApply {
    serde_json::from_value(json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "WorkspaceTemplateApply",
        "metadata": { "name": name, "namespace": ns },
        "spec": { "templateRef": { "name": "tpl" }, "variables": vars, "terraformVariables": { "list": [1, 2] } }
    }))
    .unwrap()
}

async fn workspace_of(client: &Client, ns: &str, name: &str) -> Option<Workspace> {
    Api::<Workspace>::all(client.clone())
        .get_opt(&names::workspace_name(ns, name))
        .await
        .unwrap()
}

async fn ready_reason(
    api: &Api<WorkspaceTemplateApply>,
    name: &str,
) -> Result<(String, String, String), String> {
    let a = api.get(name).await.map_err(|e| e.to_string())?;
    let status = a.status.ok_or("no status")?;
    if status.observed_generation != a.metadata.generation {
        return Err("status is for an older generation".into());
    }
    let c = find(&status.conditions, "Ready").ok_or("no Ready")?;
    let synced = find(&status.conditions, "Synced")
        .map(|s| format!("{}/{}", s.status, s.reason))
        .unwrap_or_default();
    Ok((
        format!("{}/{}", c.status, c.reason),
        c.message.clone().unwrap_or_default(),
        synced,
    ))
}

#[tokio::test]
async fn workspace_follows_template_and_variable_changes_and_is_deleted_with_the_apply() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "wta").await;
    let operator = Operator::start(client.clone(), &ns.name);
    let templates: Api<WorkspaceTemplate> = Api::namespaced(client.clone(), &ns.name);
    let applies: Api<WorkspaceTemplateApply> = Api::namespaced(client.clone(), &ns.name);
    templates
        .create(&PostParams::default(), &template(&ns.name, "# v1"))
        .await
        .unwrap();
    applies
        .create(
            &PostParams::default(),
            &apply(&ns.name, "one", json!({ "name": "first \"quoted\" value" })),
        )
        .await
        .unwrap();

    let ws = eventually("Workspace created", WAIT, || async {
        workspace_of(&client, &ns.name, "one")
            .await
            .ok_or_else(|| "no Workspace".to_string())
    })
    .await;
    let fp = &ws.spec.for_provider;
    assert_eq!(fp.module, "# v1");
    assert_eq!(fp.vars.as_ref().unwrap()[0].value, "first \"quoted\" value");
    assert_eq!(fp.varmap.as_ref().unwrap()["list"], json!([1, 2]));
    let var_file = fp.var_files.as_ref().unwrap()[0]
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        var_file.name,
        format!("{}-in", ws.name_any()),
        "WORKSPACE_NAME is the Workspace's name"
    );
    assert_eq!(
        ws.labels()[names::LABEL_APPLY_UID],
        applies.get("one").await.unwrap().uid().unwrap()
    );
    // Without a provider the Workspace has no conditions yet: creating, not failed.
    let (ready, _, synced) = eventually("status", WAIT, || ready_reason(&applies, "one")).await;
    assert_eq!(
        (ready.as_str(), synced.as_str()),
        ("False/Creating", "True/ReconcileSuccess")
    );

    // A template change reaches the Workspace (CAPT froze it after creation).
    templates.patch("tpl", &PatchParams::default(), &Patch::Merge(json!({ "spec": { "template": { "spec": { "forProvider": { "module": "# v2" } } } } }))).await.unwrap();
    eventually("module updated", WAIT, || async {
        let ws = workspace_of(&client, &ns.name, "one").await.ok_or("gone")?;
        if ws.spec.for_provider.module == "# v2" {
            Ok(())
        } else {
            Err(ws.spec.for_provider.module)
        }
    })
    .await;
    // So do variable changes, and a Terraform variable no longer given leaves the Workspace.
    applies
        .patch(
            "one",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "variables": { "name": "second" }, "terraformVariables": { "list": null, "added": "x" } } })),
        )
        .await
        .unwrap();
    eventually("variables updated", WAIT, || async {
        let ws = workspace_of(&client, &ns.name, "one").await.ok_or("gone")?;
        let v = ws.spec.for_provider.vars.unwrap()[0].value.clone();
        let varmap = serde_json::to_value(&ws.spec.for_provider.varmap).unwrap();
        if v == "second" && varmap == json!({ "added": "x" }) {
            Ok(())
        } else {
            Err(format!("vars {v}, varmap {varmap}"))
        }
    })
    .await;

    // Deleting the apply deletes its Workspace first. The Workspace was created with the
    // provider's finalizer, so both wait for the provider's destroy (none runs here).
    applies.delete("one", &Default::default()).await.unwrap();
    let ws = eventually("Workspace deleting", WAIT, || async {
        match workspace_of(&client, &ns.name, "one").await {
            Some(ws) if ws.metadata.deletion_timestamp.is_some() => Ok(ws),
            other => Err(format!("{:?}", other.map(|ws| ws.metadata))),
        }
    })
    .await;
    assert_eq!(ws.finalizers(), [names::PROVIDER_FINALIZER]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let apply = applies.get("one").await.unwrap();
    assert!(apply.metadata.deletion_timestamp.is_some());
    assert_eq!(
        apply.finalizers(),
        [names::APPLY_FINALIZER],
        "waits for its Workspace"
    );
    // The provider's destroy is done: it removes its finalizer.
    Api::<Workspace>::all(client.clone())
        .patch(
            &ws.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
        )
        .await
        .unwrap();
    eventually("apply and Workspace gone", WAIT, || async {
        let apply_gone = applies
            .get_opt("one")
            .await
            .map_err(|e| e.to_string())?
            .is_none();
        let ws_gone = workspace_of(&client, &ns.name, "one").await.is_none();
        if apply_gone && ws_gone {
            Ok(())
        } else {
            Err(format!("apply gone {apply_gone}, Workspace gone {ws_gone}"))
        }
    })
    .await;
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn missing_template_unset_variables_and_name_conflicts_are_reported() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "wta-errors").await;
    let operator = Operator::start(client.clone(), &ns.name);
    let templates: Api<WorkspaceTemplate> = Api::namespaced(client.clone(), &ns.name);
    let applies: Api<WorkspaceTemplateApply> = Api::namespaced(client.clone(), &ns.name);

    // No template yet.
    applies
        .create(
            &PostParams::default(),
            &apply(&ns.name, "early", json!({ "name": "x" })),
        )
        .await
        .unwrap();
    let (_, _, synced) = eventually("TemplateNotFound", WAIT, || async {
        let r = ready_reason(&applies, "early").await?;
        if r.2.ends_with("TemplateNotFound") {
            Ok(r)
        } else {
            Err(format!("{r:?}"))
        }
    })
    .await;
    assert_eq!(synced, "False/TemplateNotFound");
    // The template appears: the watch brings the apply along at once.
    templates
        .create(&PostParams::default(), &template(&ns.name, "# m"))
        .await
        .unwrap();
    eventually("Workspace after the template appears", WAIT, || async {
        workspace_of(&client, &ns.name, "early")
            .await
            .map(|_| ())
            .ok_or_else(|| "no Workspace".to_string())
    })
    .await;

    // A placeholder nobody sets is an error, not a literal "${name}" passed to Terraform.
    applies
        .create(&PostParams::default(), &apply(&ns.name, "unset", json!({})))
        .await
        .unwrap();
    let msg = eventually("InvalidTemplate", WAIT, || async {
        let a = applies.get("unset").await.map_err(|e| e.to_string())?;
        let c = a
            .status
            .and_then(|s| find(&s.conditions, "Synced").cloned())
            .ok_or("no Synced")?;
        if c.reason == "InvalidTemplate" {
            Ok(c.message.unwrap_or_default())
        } else {
            Err(c.reason)
        }
    })
    .await;
    assert!(
        msg.contains("name") && msg.contains("spec.variables"),
        "{msg}"
    );
    assert!(workspace_of(&client, &ns.name, "unset").await.is_none());

    // A Workspace of the same name that is not ours is left alone and reported.
    let foreign: Workspace = serde_json::from_value(json!({
        "apiVersion": "tf.upbound.io/v1beta1", "kind": "Workspace",
        "metadata": { "name": names::workspace_name(&ns.name, "taken") },
        "spec": { "forProvider": { "source": "Inline", "module": "# someone else's" } }
    }))
    .unwrap();
    let workspaces: Api<Workspace> = Api::all(client.clone());
    workspaces
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    applies
        .create(
            &PostParams::default(),
            &apply(&ns.name, "taken", json!({ "name": "x" })),
        )
        .await
        .unwrap();
    eventually("WorkspaceNameConflict", WAIT, || async {
        let r = ready_reason(&applies, "taken").await?;
        if r.2 == "False/WorkspaceNameConflict" {
            Ok(())
        } else {
            Err(format!("{r:?}"))
        }
    })
    .await;
    let untouched = workspaces.get(&foreign.name_any()).await.unwrap();
    assert_eq!(untouched.spec.for_provider.module, "# someone else's");
    // Deleting the apply must not delete the foreign Workspace.
    applies.delete("taken", &Default::default()).await.unwrap();
    eventually("apply gone", WAIT, || async {
        if applies
            .get_opt("taken")
            .await
            .map_err(|e| e.to_string())?
            .is_none()
        {
            Ok(())
        } else {
            Err("still there".into())
        }
    })
    .await;
    assert!(
        workspaces
            .get_opt(&foreign.name_any())
            .await
            .unwrap()
            .is_some()
    );
    workspaces
        .delete(&foreign.name_any(), &Default::default())
        .await
        .unwrap();
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn secrets_gate_creation_and_retained_workspaces_survive_deletion() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "wta-wait").await;
    let operator = Operator::start(client.clone(), &ns.name);
    let templates: Api<WorkspaceTemplate> = Api::namespaced(client.clone(), &ns.name);
    let applies: Api<WorkspaceTemplateApply> = Api::namespaced(client.clone(), &ns.name);
    templates
        .create(&PostParams::default(), &template(&ns.name, "# m"))
        .await
        .unwrap();
    let mut a = apply(&ns.name, "gated", json!({ "name": "x" }));
    a.spec.wait_for_secrets = Some(vec![capt_fargate::api::SecretRequirement {
        name: "needed".into(),
        namespace: ns.name.clone(),
        keys: Some(vec!["vpc_config".into()]),
    }]);
    a.spec.retain_workspace_on_delete = Some(true);
    applies.create(&PostParams::default(), &a).await.unwrap();
    let (ready, message, _) = eventually("waiting for the secret", WAIT, || {
        ready_reason(&applies, "gated")
    })
    .await;
    assert_eq!(ready, "False/WaitingForSecrets");
    assert!(message.contains("does not exist"), "{message}");

    // The secret without the key: still waiting, and the message names the key.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), &ns.name);
    let secret = |data: serde_json::Value| -> k8s_openapi::api::core::v1::Secret {
        serde_json::from_value(json!({ "metadata": { "name": "needed" }, "stringData": data }))
            .unwrap()
    };
    secrets
        .create(&PostParams::default(), &secret(json!({ "other": "x" })))
        .await
        .unwrap();
    eventually("missing key reported", WAIT, || async {
        let (_, message, _) = ready_reason(&applies, "gated").await?;
        if message.contains("lacks keys vpc_config") {
            Ok(())
        } else {
            Err(message)
        }
    })
    .await;
    assert!(workspace_of(&client, &ns.name, "gated").await.is_none());
    secrets
        .patch(
            "needed",
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": { "vpc_config": "vpc_id = \"vpc-1\"" } })),
        )
        .await
        .unwrap();
    eventually("Workspace once the key exists", WAIT, || async {
        workspace_of(&client, &ns.name, "gated")
            .await
            .map(|_| ())
            .ok_or_else(|| "no Workspace".to_string())
    })
    .await;

    // retainWorkspaceOnDelete: the apply goes, the Workspace stays.
    applies.delete("gated", &Default::default()).await.unwrap();
    eventually("apply gone", WAIT, || async {
        if applies
            .get_opt("gated")
            .await
            .map_err(|e| e.to_string())?
            .is_none()
        {
            Ok(())
        } else {
            Err("still there".into())
        }
    })
    .await;
    let kept = workspace_of(&client, &ns.name, "gated")
        .await
        .expect("retained Workspace");
    Api::<Workspace>::all(client.clone())
        .delete(&kept.name_any(), &Default::default())
        .await
        .unwrap();
    operator.stop().await;
    ns.delete().await;
}

/// A namespace-scoped operator does not watch Secrets of other namespaces: one it waits for
/// there is read with a GET, so an apply waiting for a Secret in another namespace (as a VPC
/// connection secret kept with the network can be) goes ahead once that Secret holds its keys.
#[tokio::test]
async fn a_secret_in_another_namespace_is_read_by_a_namespace_scoped_operator() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "wta-cross").await;
    let other = TestNamespace::new(&client, "wta-network").await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), &other.name);
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": { "name": "network" },
        "stringData": { "vpc_config": "vpc_id = \"vpc-1\"" }
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    // Limited to `ns`: the Secret in `other` is outside its watches.
    let operator = Operator::start(client.clone(), &ns.name);
    let templates: Api<WorkspaceTemplate> = Api::namespaced(client.clone(), &ns.name);
    let applies: Api<WorkspaceTemplateApply> = Api::namespaced(client.clone(), &ns.name);
    templates
        .create(&PostParams::default(), &template(&ns.name, "# m"))
        .await
        .unwrap();
    let mut a = apply(&ns.name, "cross", json!({ "name": "x" }));
    a.spec.wait_for_secrets = Some(vec![capt_fargate::api::SecretRequirement {
        name: "network".into(),
        namespace: other.name.clone(),
        keys: Some(vec!["vpc_config".into(), "absent".into()]),
    }]);
    applies.create(&PostParams::default(), &a).await.unwrap();
    // Read, not guessed: the message names the key the Secret lacks.
    eventually("the missing key named", WAIT, || async {
        let (ready, message, _) = ready_reason(&applies, "cross").await?;
        if ready == "False/WaitingForSecrets" && message.contains("lacks keys absent") {
            Ok(())
        } else {
            Err(format!("{ready}: {message}"))
        }
    })
    .await;
    assert!(workspace_of(&client, &ns.name, "cross").await.is_none());
    // Without the missing key, the apply goes ahead.
    applies
        .patch(
            "cross",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "waitForSecrets": [
                { "name": "network", "namespace": other.name, "keys": ["vpc_config"] }
            ] } })),
        )
        .await
        .unwrap();
    eventually("Workspace created", WAIT, || async {
        workspace_of(&client, &ns.name, "cross")
            .await
            .map(|_| ())
            .ok_or_else(|| "no Workspace".to_string())
    })
    .await;
    applies.delete("cross", &Default::default()).await.unwrap();
    operator.stop().await;
    ns.delete().await;
    other.delete().await;
}

/// What the operator remembers of an apply (the events it sent, for de-duplication) goes with
/// the apply: when its finalizer is released, and when someone else removed the finalizer
/// while its Workspace was still being destroyed.
#[tokio::test]
async fn a_deleted_apply_leaves_nothing_remembered_behind() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "wta-forget").await;
    let operator = Operator::start(client.clone(), &ns.name);
    let templates: Api<WorkspaceTemplate> = Api::namespaced(client.clone(), &ns.name);
    let applies: Api<WorkspaceTemplateApply> = Api::namespaced(client.clone(), &ns.name);
    let workspaces: Api<Workspace> = Api::all(client.clone());
    templates
        .create(&PostParams::default(), &template(&ns.name, "# m"))
        .await
        .unwrap();
    // One apply without a template (a warning event), one with a Workspace (a created event).
    let mut blocked = apply(&ns.name, "blocked", json!({ "name": "x" }));
    blocked.spec.template_ref.name = "absent".into();
    applies
        .create(&PostParams::default(), &blocked)
        .await
        .unwrap();
    applies
        .create(
            &PostParams::default(),
            &apply(&ns.name, "held", json!({ "name": "x" })),
        )
        .await
        .unwrap();
    let ws = eventually("the held apply's Workspace", WAIT, || async {
        workspace_of(&client, &ns.name, "held")
            .await
            .ok_or_else(|| "no Workspace".to_string())
    })
    .await;
    eventually("the blocked apply reported", WAIT, || async {
        let (_, _, synced) = ready_reason(&applies, "blocked").await?;
        (synced == "False/TemplateNotFound")
            .then_some(())
            .ok_or(synced)
    })
    .await;
    assert_eq!(operator.ctx.objects_with_sent_events(), 2);

    // The held apply's Workspace cannot go (a finalizer of someone else's), and then its
    // apply's finalizer is removed by hand: the apply is gone without the operator releasing it.
    let hold = json!({ "metadata": { "finalizers": ["test.capt-fargate/hold"] } });
    workspaces
        .patch(
            &ws.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&hold),
        )
        .await
        .unwrap();
    applies.delete("held", &Default::default()).await.unwrap();
    eventually("the Workspace being deleted", WAIT, || async {
        let ws = workspace_of(&client, &ns.name, "held").await;
        ws.filter(|w| w.metadata.deletion_timestamp.is_some())
            .map(|_| ())
            .ok_or_else(|| "not deleting".to_string())
    })
    .await;
    let no_finalizers = json!({ "metadata": { "finalizers": null } });
    applies
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(&no_finalizers),
        )
        .await
        .unwrap();
    // The other is deleted as usual: the operator releases it.
    applies
        .delete("blocked", &Default::default())
        .await
        .unwrap();
    eventually("both applies gone", WAIT, || async {
        let left = applies
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?;
        left.items
            .is_empty()
            .then_some(())
            .ok_or_else(|| format!("{} left", left.items.len()))
    })
    .await;
    eventually("nothing remembered", WAIT, || async {
        match operator.ctx.objects_with_sent_events() {
            0 => Ok(()),
            n => Err(format!("events of {n} objects remembered")),
        }
    })
    .await;

    workspaces
        .patch(
            &ws.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&no_finalizers),
        )
        .await
        .unwrap();
    operator.stop().await;
    ns.delete().await;
}
