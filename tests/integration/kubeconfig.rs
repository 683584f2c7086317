//! What the operator derives from the EKS connection secret: `spec.controlPlaneEndpoint`, the
//! `<cluster>-kubeconfig` Secret Cluster API connects with, and `<cluster>-user-kubeconfig`.
//!
//! The simulated provider reports the test API server's own endpoint and CA as the EKS
//! cluster's, and the operator's token source hands a ServiceAccount token of that server
//! (TokenRequest API), so the written kubeconfig really connects. Writes are counted in the
//! API server's audit log.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest};
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};
use serde_json::json;

use capt_fargate::api::CAPTControlPlane;
use capt_fargate::aws::token::{NoTokenSource, StaticTokenSource};
use capt_fargate::controller::Context;

use crate::support::audit::{self, AuditLog};
use crate::support::samples::{CP, Samples};
use crate::support::{Operator, cluster, eventually};

const WAIT: Duration = Duration::from_secs(90);
const TOKEN_SECRET: &str = "demo-cluster-kubeconfig";
const USER_SECRET: &str = "demo-cluster-user-kubeconfig";

/// A ServiceAccount of `ns` allowed to view it, and a token for it from the TokenRequest API.
async fn service_account_token(client: &Client, ns: &str) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let account: ServiceAccount =
        serde_json::from_value(json!({ "metadata": { "name": "capi" } })).unwrap();
    accounts
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "capi-view" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view" },
        "subjects": [{ "kind": "ServiceAccount", "name": "capi", "namespace": ns }],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let request: TokenRequest = serde_json::from_value(json!({
        "spec": { "expirationSeconds": 3600 }
    }))
    .unwrap();
    let answer: TokenRequest = accounts
        .create_subresource("token", "capi", &PostParams::default(), &request)
        .await
        .unwrap();
    answer.status.expect("a token").token
}

/// The operator in this process with its own client certificate (so the audit log names its
/// writes), minting kubeconfig tokens with `token` (None: no token source at all).
async fn operator(ns: &str, user: &str, token: Option<&str>) -> Operator {
    let kubeconfig = audit::kubeconfig_for_user(user, None).await;
    let client = cluster::client_from(&kubeconfig).await;
    let token = token.map(String::from);
    Operator::start_with(client, ns, move |ctx: &mut Context| {
        ctx.token_source = match token {
            Some(token) => Arc::new(StaticTokenSource::new(token)),
            None => Arc::new(NoTokenSource),
        };
    })
}

fn condition(cp: &CAPTControlPlane, type_: &str) -> Option<(String, String, String)> {
    cp.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits for the control plane's `KubeconfigReady` condition to have `status` and `reason`.
async fn kubeconfig_condition(samples: &Samples, status: &str, reason: &str) -> String {
    let api = samples.cps();
    eventually(&format!("KubeconfigReady={status}/{reason}"), WAIT, || {
        let api = api.clone();
        async move {
            let cp = api.get(CP).await.map_err(|e| e.to_string())?;
            match condition(&cp, "KubeconfigReady") {
                Some((s, r, m)) if s == status && r == reason => Ok(m),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await
}

/// The Secret `name` once it satisfies `check`.
async fn secret_when(
    samples: &Samples,
    name: &str,
    what: &str,
    check: impl Fn(&Secret) -> bool,
) -> Secret {
    let api = samples.secrets();
    eventually(what, WAIT, || {
        let api = api.clone();
        let check = &check;
        async move {
            match api.get_opt(name).await.map_err(|e| e.to_string())? {
                Some(s) if check(&s) => Ok(s),
                other => Err(format!(
                    "{:?}",
                    other.map(|s| (s.resource_version(), s.annotations().clone()))
                )),
            }
        }
    })
    .await
}

fn value(secret: &Secret) -> String {
    let data = secret.data.as_ref().expect("data");
    String::from_utf8(data["value"].0.clone()).unwrap()
}

/// Connects with the kubeconfig in `secret` and returns who the API server says we are,
/// after listing the Pods of `ns` (allowed to the ServiceAccount by the `view` role).
async fn connect(secret: &Secret, ns: &str) -> String {
    let kubeconfig: Kubeconfig = serde_saphyr::from_str(&value(secret)).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let client = Client::try_from(config).unwrap();
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .expect("listing pods with the kubeconfig Secret");
    let review: SelfSubjectReview = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview", "metadata": {}
    }))
    .unwrap();
    let api: Api<SelfSubjectReview> = Api::all(client);
    let answer = api.create(&PostParams::default(), &review).await.unwrap();
    answer
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .unwrap_or_default()
}

/// Writes by `user` to Secrets and control planes of `ns` since `from`.
fn writes_since(log: &AuditLog, user: &str, ns: &str, from: Timestamp) -> Vec<String> {
    log.writes()
        .into_iter()
        .filter(|w| w.user == user && w.namespace == ns && w.received >= from)
        .filter(|w| w.resource == "secrets" || w.resource == "captcontrolplanes")
        .map(|w| format!("{} {} {}", w.verb, w.kind(), w.name))
        .collect()
}

#[tokio::test]
async fn the_kubeconfig_connects_is_restored_and_a_converged_operator_rewrites_nothing() {
    let samples = Samples::start("kubeconfig", Duration::from_millis(200)).await;
    let ns = samples.ns.name.clone();
    samples
        .provider
        .report_test_cluster(&cluster::kubeconfig().await);
    let token = service_account_token(&samples.client, &ns).await;
    let user = format!("operator-{ns}");
    let log = AuditLog::open().await;
    let op = operator(&ns, &user, Some(&token)).await;
    samples.create_vpc_secret().await;

    // The endpoint: the test API server's host and port, without scheme.
    let admin = Kubeconfig::read_from(cluster::kubeconfig().await).unwrap();
    let server = admin.clusters[0]
        .cluster
        .as_ref()
        .unwrap()
        .server
        .clone()
        .unwrap();
    let authority = server.trim_start_matches("https://").to_string();
    let (host, port) = authority.rsplit_once(':').unwrap();
    let cps = samples.cps();
    eventually("spec.controlPlaneEndpoint", WAIT, || {
        let cps = cps.clone();
        async move {
            let cp = cps.get(CP).await.map_err(|e| e.to_string())?;
            match cp.spec.control_plane_endpoint {
                Some(e) if e.host == host && e.port.to_string() == port => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    kubeconfig_condition(&samples, "True", "KubeconfigAvailable").await;
    let cp = cps.get(CP).await.unwrap();

    // The token kubeconfig: the contract's shape, and it connects as the ServiceAccount.
    let secret = samples.secrets().get(TOKEN_SECRET).await.unwrap();
    assert_eq!(secret.type_.as_deref(), Some("cluster.x-k8s.io/secret"));
    assert_eq!(
        secret
            .labels()
            .get("cluster.x-k8s.io/cluster-name")
            .map(String::as_str),
        Some(CP)
    );
    let owner = secret
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .expect("a controller");
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("CAPTControlPlane", cp.uid().unwrap().as_str())
    );
    assert_eq!(
        secret.data.as_ref().unwrap().keys().collect::<Vec<_>>(),
        ["value"]
    );
    assert!(!value(&secret).contains("exec"), "no exec plugin");
    assert_eq!(
        connect(&secret, &ns).await,
        format!("system:serviceaccount:{ns}:capi")
    );

    // The user kubeconfig: an aws eks get-token entry for the cluster and its region.
    let user_secret = samples.secrets().get(USER_SECRET).await.unwrap();
    assert_eq!(
        user_secret.type_.as_deref(),
        Some("cluster.x-k8s.io/secret")
    );
    let user_config: serde_json::Value = serde_saphyr::from_str(&value(&user_secret)).unwrap();
    let exec = &user_config["users"][0]["user"]["exec"];
    assert_eq!(exec["command"], "aws");
    assert_eq!(
        exec["args"],
        json!([
            "eks",
            "get-token",
            "--cluster-name",
            CP,
            "--region",
            "ap-northeast-1",
            "--output",
            "json"
        ])
    );
    assert_eq!(user_config["clusters"][0]["cluster"]["server"], server);

    // Converged: no write to the Secrets or the control plane, by a running operator ...
    samples.all_ready_within(4, WAIT).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let from = Timestamp::now();
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(writes_since(&log, &user, &ns, from), Vec::<String>::new());
    // ... nor by a restarted one.
    op.stop().await;
    let from = Timestamp::now();
    let op = operator(&ns, &user, Some(&token)).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        writes_since(&log, &user, &ns, from),
        Vec::<String>::new(),
        "a restarted operator rewrote"
    );

    // Deleted by hand: restored, and it connects again.
    samples
        .secrets()
        .delete(TOKEN_SECRET, &Default::default())
        .await
        .unwrap();
    let old_uid = secret.uid();
    let restored = secret_when(&samples, TOKEN_SECRET, "the deleted Secret restored", |s| {
        s.uid() != old_uid && s.metadata.deletion_timestamp.is_none()
    })
    .await;
    assert_eq!(
        connect(&restored, &ns).await,
        format!("system:serviceaccount:{ns}:capi")
    );

    // Edited by hand: its value and label are put back.
    samples
        .secrets()
        .patch(
            TOKEN_SECRET,
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": { "value": "edited" } })),
        )
        .await
        .unwrap();
    let back = secret_when(&samples, TOKEN_SECRET, "the edited value restored", |s| {
        value(s) != "edited"
    })
    .await;
    assert_eq!(
        connect(&back, &ns).await,
        format!("system:serviceaccount:{ns}:capi")
    );
    samples
        .secrets()
        .patch(
            USER_SECRET,
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "labels": { "cluster.x-k8s.io/cluster-name": "other" } } }),
            ),
        )
        .await
        .unwrap();
    secret_when(&samples, USER_SECRET, "the edited label restored", |s| {
        s.labels()
            .get("cluster.x-k8s.io/cluster-name")
            .map(String::as_str)
            == Some(CP)
    })
    .await;
    op.stop().await;
    samples.stop().await;
}

#[tokio::test]
async fn a_secret_of_the_kubeconfig_name_that_is_not_ours_is_left_alone() {
    let samples = Samples::start("kubeconfig-foreign", Duration::from_millis(200)).await;
    let ns = samples.ns.name.clone();
    let theirs: Secret = serde_json::from_value(json!({
        "metadata": { "name": TOKEN_SECRET },
        "stringData": { "value": "someone else's" },
    }))
    .unwrap();
    samples
        .secrets()
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    let op = operator(&ns, &format!("operator-{ns}"), Some("static-token")).await;
    samples.create_vpc_secret().await;
    let message = kubeconfig_condition(&samples, "False", "KubeconfigSecretConflict").await;
    assert!(
        message.contains(&format!(
            "Secret {ns}/{TOKEN_SECRET} exists and is not controlled"
        )),
        "{message}"
    );
    // The user kubeconfig, which is free, is written; theirs is untouched.
    secret_when(&samples, USER_SECRET, "the user kubeconfig", |_| true).await;
    let kept = samples.secrets().get(TOKEN_SECRET).await.unwrap();
    assert_eq!(value(&kept), "someone else's");
    assert!(kept.owner_references().is_empty());
    assert_eq!(kept.type_.as_deref(), Some("Opaque"));

    // Once it is gone, the operator writes its own.
    samples
        .secrets()
        .delete(TOKEN_SECRET, &Default::default())
        .await
        .unwrap();
    kubeconfig_condition(&samples, "True", "KubeconfigAvailable").await;
    let ours = samples.secrets().get(TOKEN_SECRET).await.unwrap();
    assert_eq!(ours.type_.as_deref(), Some("cluster.x-k8s.io/secret"));
    op.stop().await;
    samples.stop().await;
}

#[tokio::test]
async fn a_malformed_endpoint_or_ca_is_reported_without_a_hot_loop() {
    let samples = Samples::start("kubeconfig-bad", Duration::from_millis(200)).await;
    let ns = samples.ns.name.clone();
    samples
        .provider
        .report_output("cluster_endpoint", json!("http://no-tls.example"));
    let op = operator(&ns, &format!("operator-{ns}"), Some("static-token")).await;
    samples.create_vpc_secret().await;
    let message = kubeconfig_condition(&samples, "False", "InvalidConnectionSecret").await;
    assert!(
        message.contains("key cluster_endpoint") && message.contains("expected an https URL"),
        "{message}"
    );
    samples.all_ready_within(4, WAIT).await;
    // Reported, and left until the secret changes: a handful of reconciles, not a loop.
    let before = op.metrics.reconcile_count("controlplane");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = op.metrics.reconcile_count("controlplane") - before;
    assert!(
        during <= 3,
        "{during} reconciles in 5 s with a malformed endpoint"
    );
    let cp = samples.cps().get(CP).await.unwrap();
    assert_eq!(
        cp.spec.control_plane_endpoint, None,
        "no endpoint from a malformed URL"
    );
    assert!(
        samples
            .secrets()
            .get_opt(TOKEN_SECRET)
            .await
            .unwrap()
            .is_none()
    );

    samples
        .provider
        .report_output("cluster_endpoint", json!("https://ok.example:8443"));
    samples
        .provider
        .report_output("cluster_certificate_authority_data", json!("not base64!"));
    let message = eventually("the CA reported", WAIT, || {
        let api = samples.cps();
        async move {
            let cp = api.get(CP).await.map_err(|e| e.to_string())?;
            match condition(&cp, "KubeconfigReady") {
                Some((_, _, m)) if m.contains("key cluster_certificate_authority_data") => Ok(m),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    assert!(message.contains("expected base64 of a PEM"), "{message}");

    // Fixed: the kubeconfig follows.
    samples
        .provider
        .report_test_cluster(&cluster::kubeconfig().await);
    samples
        .provider
        .report_output("cluster_endpoint", json!("https://ok.example:8443"));
    kubeconfig_condition(&samples, "True", "KubeconfigAvailable").await;
    let cp = samples.cps().get(CP).await.unwrap();
    let endpoint = cp.spec.control_plane_endpoint.unwrap();
    assert_eq!(
        (endpoint.host.as_str(), endpoint.port),
        ("ok.example", 8443)
    );
    op.stop().await;
    samples.stop().await;
}

#[tokio::test]
async fn without_credentials_no_kubeconfig_is_written_and_the_condition_says_so() {
    let samples = Samples::start("kubeconfig-nocreds", Duration::from_millis(200)).await;
    let ns = samples.ns.name.clone();
    let op = operator(&ns, &format!("operator-{ns}"), None).await;
    samples.create_vpc_secret().await;
    let message = kubeconfig_condition(&samples, "False", "NoCredentials").await;
    assert!(message.contains("no AWS credentials"), "{message}");
    assert!(
        message.contains("no kubeconfig Secret is written"),
        "{message}"
    );
    samples.all_ready_within(4, WAIT).await;
    for name in [TOKEN_SECRET, USER_SECRET] {
        assert!(
            samples.secrets().get_opt(name).await.unwrap().is_none(),
            "{name} written without credentials"
        );
    }
    // The endpoint does not need credentials.
    let cp = samples.cps().get(CP).await.unwrap();
    assert!(
        cp.spec
            .control_plane_endpoint
            .is_some_and(|e| !e.host.is_empty())
    );
    op.stop().await;
    samples.stop().await;
}
