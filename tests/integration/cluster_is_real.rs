//! Proof that the test control plane is a real one: kubectl talks to it, the API server
//! validates custom resources against their schemas, kube-controller-manager garbage-collects
//! dependents and finalizes namespaces, and ServiceAccount tokens are authenticated and
//! authorized through RBAC.

use std::time::Duration;

use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::json;

use capt_fargate::api::CAPTControlPlane;

use crate::support::{self, TestNamespace};

/// Builds a typed object from JSON (the tests describe objects as manifests).
fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).unwrap()
}

/// The API error of a result that must have failed.
fn api_error<T: std::fmt::Debug>(what: &str, result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        Err(other) => panic!("{what}: expected an API error, got {other}"),
        Ok(value) => panic!("{what}: expected an API error, but it succeeded: {value:?}"),
    }
}

/// Whether a get returned 404.
fn is_not_found<T>(result: &Result<T, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(s)) if s.code == 404)
}

#[tokio::test]
async fn kubectl_lists_the_system_namespaces() {
    // Makes sure the cluster is up (and the CRDs installed) before kubectl runs.
    let _client = support::client().await;
    let kubeconfig = support::cluster::kubeconfig().await;
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["get", "namespaces", "-o", "name"])
            .output()
    })
    .await
    .unwrap()
    .expect("kubectl must be installed to run this test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kubectl get namespaces failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let names: Vec<&str> = stdout.lines().map(str::trim).collect();
    for expected in [
        "namespace/default",
        "namespace/kube-system",
        "namespace/kube-public",
    ] {
        assert!(
            names.contains(&expected),
            "kubectl did not list {expected}; it listed {names:?}"
        );
    }
}

#[tokio::test]
async fn the_api_server_enforces_the_crd_schema() {
    let client = support::client().await;

    // The CRD is installed and Established, with the schema generated from the Rust types.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds
        .get("captcontrolplanes.controlplane.cluster.x-k8s.io")
        .await
        .unwrap();
    let established = crd
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Established"))
        .map(|c| c.status.clone());
    assert_eq!(established.as_deref(), Some("True"));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1beta1");
    let spec_schema = &version
        .schema
        .as_ref()
        .unwrap()
        .open_api_v3_schema
        .as_ref()
        .unwrap()
        .properties
        .as_ref()
        .unwrap()["spec"];
    assert_eq!(
        spec_schema.required.as_deref(),
        Some(&["version".to_string(), "workspaceTemplateRef".to_string()][..])
    );

    let ns = TestNamespace::new(&client, "real-crd").await;
    let ar = ApiResource::erase::<CAPTControlPlane>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &ar);

    // A valid object is stored, with the schema's default applied by the API server.
    let good: DynamicObject = from_json(json!({
        "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1",
        "kind": "CAPTControlPlane",
        "metadata": { "name": "good" },
        "spec": { "version": "1.31", "workspaceTemplateRef": { "name": "eks-controlplane" } }
    }));
    let created = api.create(&PostParams::default(), &good).await.unwrap();
    assert_eq!(
        created.data["spec"]["defaultFargateProfiles"],
        json!(["kube-system", "karpenter"])
    );
    assert!(created.metadata.uid.is_some(), "a stored object has a uid");

    // An object without the required spec.version is rejected as Invalid.
    let missing_version: DynamicObject = from_json(json!({
        "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1",
        "kind": "CAPTControlPlane",
        "metadata": { "name": "no-version" },
        "spec": { "workspaceTemplateRef": { "name": "eks-controlplane" } }
    }));
    let status = api_error(
        "creating a CAPTControlPlane without spec.version",
        api.create(&PostParams::default(), &missing_version).await,
    );
    assert_eq!(status.code, 422, "{status:?}");
    assert_eq!(status.reason, "Invalid", "{status:?}");
    assert!(
        status.message.contains("spec.version: Required value"),
        "message: {}",
        status.message
    );
    let details = status.details.expect("an Invalid status has details");
    assert_eq!(details.kind, "CAPTControlPlane");
    assert_eq!(details.name, "no-version");
    assert!(
        details
            .causes
            .iter()
            .any(|c| c.field == "spec.version" && c.reason == "FieldValueRequired"),
        "causes: {:?}",
        details.causes
    );

    // A value of the wrong type is rejected too.
    let wrong_type: DynamicObject = from_json(json!({
        "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1",
        "kind": "CAPTControlPlane",
        "metadata": { "name": "wrong-type" },
        "spec": { "version": 131, "workspaceTemplateRef": { "name": "eks-controlplane" } }
    }));
    let status = api_error(
        "creating a CAPTControlPlane with a numeric version",
        api.create(&PostParams::default(), &wrong_type).await,
    );
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status
            .message
            .contains("spec.version: Invalid value: \"integer\""),
        "message: {}",
        status.message
    );
    assert!(
        status.message.contains("must be of type string"),
        "message: {}",
        status.message
    );

    // Neither rejected object was stored.
    let names: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect();
    assert_eq!(names, vec!["good".to_string()]);

    ns.delete().await;
}

#[tokio::test]
async fn garbage_collector_deletes_dependents_of_a_deleted_owner() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "real-gc").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);

    let owner = api
        .create(
            &PostParams::default(),
            &from_json(json!({ "metadata": { "name": "owner" }, "data": { "role": "owner" } })),
        )
        .await
        .unwrap();
    let owner_uid = owner.metadata.uid.clone().expect("created owner has a uid");
    let dependent: ConfigMap = from_json(json!({
        "metadata": {
            "name": "dependent",
            "ownerReferences": [{ "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid }]
        },
        "data": { "role": "dependent" }
    }));
    api.create(&PostParams::default(), &dependent)
        .await
        .unwrap();
    // An unrelated ConfigMap must survive the collection.
    api.create(
        &PostParams::default(),
        &from_json(json!({ "metadata": { "name": "bystander" } })),
    )
    .await
    .unwrap();

    let stored = api.get("dependent").await.unwrap();
    let refs = stored.metadata.owner_references.unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].uid, owner_uid);

    // The dependent stays while its owner exists.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        api.get("dependent").await.is_ok(),
        "the dependent vanished while its owner still existed"
    );

    api.delete("owner", &DeleteParams::default()).await.unwrap();
    support::eventually(
        "the garbage collector to delete the dependent ConfigMap",
        Duration::from_secs(60),
        || {
            let api = api.clone();
            async move {
                match api.get("dependent").await {
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    Ok(cm) => Err(format!(
                        "still there (deletionTimestamp {:?})",
                        cm.metadata.deletion_timestamp
                    )),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
    )
    .await;
    assert!(is_not_found(&api.get("owner").await));
    let bystander = api
        .get("bystander")
        .await
        .expect("the unrelated ConfigMap must not be collected");
    assert!(bystander.metadata.deletion_timestamp.is_none());

    ns.delete().await;
}

#[tokio::test]
async fn namespace_deletion_completes() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "real-nsdel").await;
    let name = ns.name.clone();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &name);
    configmaps
        .create(
            &PostParams::default(),
            &from_json(json!({ "metadata": { "name": "inside" }, "data": { "k": "v" } })),
        )
        .await
        .unwrap();
    assert_eq!(
        namespaces
            .get(&name)
            .await
            .unwrap()
            .status
            .and_then(|s| s.phase)
            .as_deref(),
        Some("Active")
    );

    ns.delete().await;
    // Right after the delete the namespace is Terminating (or already gone), never Active.
    match namespaces.get(&name).await {
        Ok(n) => {
            assert!(
                n.metadata.deletion_timestamp.is_some(),
                "a deleted namespace has a deletionTimestamp"
            );
            assert_eq!(
                n.status.and_then(|s| s.phase).as_deref(),
                Some("Terminating")
            );
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => panic!("getting namespace {name}: {e}"),
    }

    support::eventually(
        &format!("namespace {name} to be finalized"),
        Duration::from_secs(60),
        || {
            let namespaces = namespaces.clone();
            let name = name.clone();
            async move {
                match namespaces.get(&name).await {
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    Ok(n) => Err(format!(
                        "phase {:?}, conditions {:?}",
                        n.status.as_ref().and_then(|s| s.phase.clone()),
                        n.status.and_then(|s| s.conditions)
                    )),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
    )
    .await;
    // Its content went with it.
    let status = api_error(
        "getting the ConfigMap of a deleted namespace",
        configmaps.get("inside").await,
    );
    assert_eq!(status.code, 404, "{status:?}");
}

/// A client that authenticates only with `token`, trusting the test cluster's CA.
async fn client_with_token(token: &str) -> Client {
    let path = support::cluster::kubeconfig().await;
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let admin = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let mut config = Config::new(admin.cluster_url.clone());
    config.root_cert = admin.root_cert.clone();
    assert!(
        config.root_cert.as_ref().is_some_and(|c| !c.is_empty()),
        "the admin kubeconfig carries the cluster CA"
    );
    config.auth_info.token = Some(token.to_string().into());
    config.default_namespace = "default".into();
    Client::try_from(config).unwrap()
}

#[tokio::test]
async fn service_account_tokens_are_authenticated_and_authorized() {
    let admin = support::client().await;
    let ns = TestNamespace::new(&admin, "real-sa").await;
    let sa_name = "reader";
    let username = format!("system:serviceaccount:{}:{sa_name}", ns.name);

    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns.name);
    accounts
        .create(
            &PostParams::default(),
            &from_json(json!({ "metadata": { "name": sa_name } })),
        )
        .await
        .unwrap();

    // The serviceaccount controller of kube-controller-manager creates "default" in every namespace.
    support::eventually(
        "the ServiceAccount controller to create \"default\"",
        Duration::from_secs(60),
        || {
            let accounts = accounts.clone();
            async move {
                accounts
                    .get("default")
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        },
    )
    .await;

    let request: TokenRequest =
        from_json(json!({ "spec": { "audiences": [], "expirationSeconds": 600 } }));
    let issued = accounts
        .create_token_request(sa_name, &PostParams::default(), &request)
        .await
        .unwrap();
    let status = issued.status.expect("a TokenRequest answer has a status");
    assert_eq!(status.token.split('.').count(), 3, "the token is a JWT");
    assert!(
        status.expiration_timestamp.0 > k8s_openapi::jiff::Timestamp::now(),
        "the token expires in the future"
    );

    let configmaps: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns.name);
    configmaps
        .create(
            &PostParams::default(),
            &from_json(json!({ "metadata": { "name": "visible" }, "data": { "k": "v" } })),
        )
        .await
        .unwrap();

    let roles: Api<Role> = Api::namespaced(admin.clone(), &ns.name);
    roles
        .create(
            &PostParams::default(),
            &from_json(json!({
                "metadata": { "name": "configmap-reader" },
                "rules": [{ "apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"] }]
            })),
        )
        .await
        .unwrap();
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), &ns.name);
    bindings
        .create(
            &PostParams::default(),
            &from_json(json!({
                "metadata": { "name": "configmap-reader" },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmap-reader" },
                "subjects": [{ "kind": "ServiceAccount", "name": sa_name, "namespace": ns.name }]
            })),
        )
        .await
        .unwrap();

    let sa_client = client_with_token(&status.token).await;

    // Who the API server thinks we are.
    let reviews: Api<SelfSubjectReview> = Api::all(sa_client.clone());
    let review = reviews
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap();
    let user = review
        .status
        .and_then(|s| s.user_info)
        .expect("a SelfSubjectReview reports the user");
    assert_eq!(user.username.as_deref(), Some(username.as_str()));
    let groups = user.groups.unwrap_or_default();
    for group in [
        "system:serviceaccounts".to_string(),
        format!("system:serviceaccounts:{}", ns.name),
        "system:authenticated".to_string(),
    ] {
        assert!(groups.contains(&group), "groups {groups:?} lack {group}");
    }
    let sa_uid = accounts.get(sa_name).await.unwrap().metadata.uid.unwrap();
    assert_eq!(
        user.uid.as_deref(),
        Some(sa_uid.as_str()),
        "the token is bound to this ServiceAccount object"
    );

    // Allowed by the Role (RBAC is served from informers, so wait for the binding to be seen).
    let sa_configmaps: Api<ConfigMap> = Api::namespaced(sa_client.clone(), &ns.name);
    let listed = support::eventually(
        "the RoleBinding to take effect",
        Duration::from_secs(30),
        || {
            let sa_configmaps = sa_configmaps.clone();
            async move {
                sa_configmaps
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| e.to_string())
            }
        },
    )
    .await;
    let names: Vec<String> = listed
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert!(names.contains(&"visible".to_string()), "listed {names:?}");
    assert_eq!(
        sa_configmaps.get("visible").await.unwrap().data.unwrap()["k"],
        "v"
    );

    // Not allowed: creating configmaps.
    let status = api_error(
        "creating a ConfigMap with a get/list-only token",
        sa_configmaps
            .create(
                &PostParams::default(),
                &from_json(json!({ "metadata": { "name": "forbidden" } })),
            )
            .await,
    );
    assert_eq!(status.code, 403, "{status:?}");
    assert_eq!(status.reason, "Forbidden", "{status:?}");
    assert!(
        status.message.contains(&format!("User \"{username}\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"{}\"", ns.name)),
        "message: {}",
        status.message
    );
    assert!(
        is_not_found(&configmaps.get("forbidden").await),
        "the forbidden ConfigMap must not exist"
    );

    // Not allowed: secrets.
    let sa_secrets: Api<Secret> = Api::namespaced(sa_client.clone(), &ns.name);
    let status = api_error(
        "listing Secrets with a configmap-only token",
        sa_secrets.list(&ListParams::default()).await,
    );
    assert_eq!(status.code, 403, "{status:?}");
    assert!(
        status.message.contains(&format!("User \"{username}\" cannot list resource \"secrets\" in API group \"\" in the namespace \"{}\"", ns.name)),
        "message: {}",
        status.message
    );

    // Not allowed: configmaps of another namespace (the Role is namespaced).
    let other: Api<ConfigMap> = Api::namespaced(sa_client.clone(), "default");
    let status = api_error(
        "listing ConfigMaps in another namespace",
        other.list(&ListParams::default()).await,
    );
    assert_eq!(status.code, 403, "{status:?}");

    // A token the API server did not issue is not authenticated at all.
    let forged = client_with_token("not-a-real-token").await;
    let status = api_error(
        "listing with a forged token",
        Api::<ConfigMap>::namespaced(forged, &ns.name)
            .list(&ListParams::default())
            .await,
    );
    assert_eq!(status.code, 401, "{status:?}");
    assert_eq!(status.reason, "Unauthorized", "{status:?}");

    ns.delete().await;
}

#[tokio::test]
async fn the_api_server_serves_streaming_lists_and_the_operator_finds_out() {
    use futures::TryStreamExt;
    use kube::runtime::watcher;
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "streaming-list").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    for name in ["a", "b", "c"] {
        let secret: Secret = from_json(json!({ "metadata": { "name": name } }));
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }
    assert!(
        capt_fargate::runtime::listing::streaming_lists_served(&secrets).await,
        "Kubernetes 1.34 serves streaming lists by default"
    );
    // The operator's watch configuration delivers the existing objects one by one, then the
    // end of the initial list.
    let events = watcher(secrets, capt_fargate::runtime::listing::config(true));
    let initial: Vec<String> = tokio::time::timeout(
        Duration::from_secs(30),
        events
            .try_take_while(|e| futures::future::ready(Ok(!matches!(e, watcher::Event::InitDone))))
            .try_filter_map(|e| async move {
                Ok(match e {
                    watcher::Event::InitApply(s) => s.metadata.name,
                    _ => None,
                })
            })
            .try_collect(),
    )
    .await
    .expect("the initial list ends")
    .expect("no watch error");
    let mut initial = initial;
    initial.sort();
    assert_eq!(initial, ["a", "b", "c"]);
    ns.delete().await;
}
