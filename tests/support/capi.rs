//! A Cluster API management cluster for the tests: `tests/capi/up` builds the real CAPI core
//! manager from the Go module proxy and runs it against a private copy of the test control
//! plane, with CAPI's own CRDs and webhooks. If it cannot be built or started, every test
//! that needs it fails with the script's output; none is skipped.

use std::path::PathBuf;

use kube::api::DynamicObject;
use kube::discovery::ApiResource;
use kube::{Api, Client};
use tokio::sync::OnceCell;

static KUBECONFIG: OnceCell<PathBuf> = OnceCell::const_new();
static CRDS: OnceCell<()> = OnceCell::const_new();

/// CRDs the CAPI release installs itself; the tests' own copies must not replace them.
const CAPI_OWNED: &[&str] = &["clusters.cluster.x-k8s.io"];

/// Path of the admin kubeconfig of the management cluster (started once per test process).
pub async fn kubeconfig() -> PathBuf {
    KUBECONFIG
        .get_or_init(|| {
            super::cluster::run_up("tests/capi/up", "the Cluster API management cluster")
        })
        .await
        .clone()
}

/// An admin client of the management cluster, with this project's CRDs and the
/// provider-terraform Workspace CRD installed beside CAPI's.
pub async fn client() -> Client {
    let client = super::cluster::client_from(&kubeconfig().await).await;
    CRDS.get_or_init(|| super::install_crds_except(client.clone(), CAPI_OWNED))
        .await;
    client
}

/// A further management cluster `name` (`tests/capi/up NAME`: its own control plane and CAPI
/// manager, e.g. the target of `clusterctl move`), with this project's CRDs and the
/// Workspace CRD installed as in [`client`]: its admin kubeconfig and a client.
pub async fn another(name: &str) -> (PathBuf, Client) {
    let kubeconfig = super::cluster::run_up_with(
        "tests/capi/up",
        &[name],
        "a second Cluster API management cluster",
    )
    .await;
    let client = super::cluster::client_from(&kubeconfig).await;
    super::install_crds_except(client.clone(), CAPI_OWNED).await;
    (kubeconfig, client)
}

/// `cluster.x-k8s.io/v1beta2` Clusters in `namespace`, as the CAPI manager stores them.
pub fn clusters(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: "cluster.x-k8s.io".into(),
        version: "v1beta2".into(),
        api_version: "cluster.x-k8s.io/v1beta2".into(),
        kind: "Cluster".into(),
        plural: "clusters".into(),
    };
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// The status of the v1beta2 condition `type_` in a CAPI object, e.g. `Some("True")`.
pub fn condition_status(obj: &DynamicObject, type_: &str) -> Option<String> {
    obj.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .and_then(|c| c["status"].as_str())
        .map(str::to_string)
}

/// `type=status (reason: message)` of every v1beta2 condition, for failure messages.
pub fn conditions_summary(obj: &DynamicObject) -> String {
    obj.data["status"]["conditions"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    format!(
                        "{}={} ({}: {})",
                        c["type"].as_str().unwrap_or("?"),
                        c["status"].as_str().unwrap_or("?"),
                        c["reason"].as_str().unwrap_or(""),
                        c["message"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

/// A ServiceAccount `name` of `namespace` bound to `cluster-admin` (what the EKS access entry
/// gives the operator's IAM role), and a token for it from the TokenRequest API: the
/// credential of the kubeconfig the operator writes when the simulated "EKS cluster" is the
/// management cluster itself.
pub async fn admin_token(client: &Client, namespace: &str, name: &str) -> String {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    use kube::api::PostParams;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let account: ServiceAccount =
        serde_json::from_value(serde_json::json!({ "metadata": { "name": name } })).unwrap();
    accounts
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": { "name": format!("{namespace}-{name}") },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin" },
        "subjects": [{ "kind": "ServiceAccount", "name": name, "namespace": namespace }],
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let request: TokenRequest =
        serde_json::from_value(serde_json::json!({ "spec": { "expirationSeconds": 7200 } }))
            .unwrap();
    let answer: TokenRequest = accounts
        .create_subresource("token", name, &PostParams::default(), &request)
        .await
        .unwrap();
    answer.status.expect("a token").token
}
