//! The Helm chart's RBAC against the code: the rules the chart renders are exactly
//! `capt_fargate::rbac`'s, and the operator, authenticated as the chart's ServiceAccount,
//! takes the samples through their whole lifecycle and wins leader election with them.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{DynamicObject, ListParams, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};
use serde_json::json;
use tokio::sync::OnceCell;

use capt_fargate::api::{CAPTCluster, CAPTControlPlane, Workspace};
use capt_fargate::leader::{self, Election};
use capt_fargate::names;
use capt_fargate::rbac::{FORBIDDEN, LEADER_ELECTION_RULES, RULES, Rule, triples};

use crate::support::simulated_provider::SimulatedProvider;
use crate::support::{self, Operator, TestNamespace, eventually};

const CP: &str = "demo-cluster";
const WAIT: Duration = Duration::from_secs(60);
const CHART: &str = "config/helm/capt-fargate";

type Triple = (String, String, String);

static HELM: OnceCell<PathBuf> = OnceCell::const_new();

/// The helm CLI, built from tests/helm (seconds when Go's cache is warm).
async fn helm() -> PathBuf {
    HELM.get_or_init(|| async {
        let root = support::repo_root();
        let script = root.join("tests/helm/build.sh");
        let out = tokio::task::spawn_blocking(move || Command::new(&script).output())
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("cannot run tests/helm/build.sh: {e}"));
        assert!(
            out.status.success(),
            "tests/helm/build.sh failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        root.join("target/helm/bin/helm")
    })
    .await
    .clone()
}

/// `helm template` of the chart into `namespace` with `--set` of each of `sets`, and `extra`
/// arguments, as objects.
async fn render(namespace: &str, sets: &[String], extra: &[&str]) -> Vec<DynamicObject> {
    let helm = helm().await;
    let mut args = vec![
        "template".to_string(),
        "capt-fargate".into(),
        CHART.into(),
        "--namespace".into(),
        namespace.into(),
    ];
    for s in sets {
        args.extend(["--set".to_string(), s.clone()]);
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    let root = support::repo_root();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(helm).args(&args).current_dir(root).output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split("\n---")
        .filter_map(|doc| {
            let value: serde_json::Value =
                serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("rendered YAML: {e}\n{doc}"));
            (!value.is_null()).then(|| serde_json::from_value(value).unwrap())
        })
        .collect()
}

fn kind(obj: &DynamicObject) -> &str {
    obj.types
        .as_ref()
        .map(|t| t.kind.as_str())
        .unwrap_or_default()
}

fn set(rules: &[Rule]) -> BTreeSet<Triple> {
    triples(rules)
        .map(|(g, r, v)| (g.to_string(), r.to_string(), v.to_string()))
        .collect()
}

/// The (group, resource, verb) triples that rendered Roles/ClusterRoles of `kind` grant,
/// keyed by the object's namespace ("" for ClusterRoles).
fn granted(objects: &[DynamicObject], role_kind: &str, name: &str) -> BTreeSet<Triple> {
    let role = objects
        .iter()
        .find(|o| kind(o) == role_kind && o.name_any() == name)
        .unwrap_or_else(|| panic!("no {role_kind} {name} rendered"));
    let mut out = BTreeSet::new();
    for rule in role.data["rules"].as_array().expect("rules") {
        let strings = |key: &str| -> Vec<String> {
            rule[key]
                .as_array()
                .unwrap_or(&vec![])
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        assert!(
            rule.get("resourceNames").is_none() && rule.get("nonResourceURLs").is_none(),
            "unexpected rule {rule}"
        );
        for group in strings("apiGroups") {
            for resource in strings("resources") {
                for verb in strings("verbs") {
                    assert!(
                        group != "*" && resource != "*" && verb != "*",
                        "wildcard in {rule}"
                    );
                    assert!(
                        out.insert((group.clone(), resource.clone(), verb)),
                        "{name} grants {group}/{resource} twice"
                    );
                }
            }
        }
    }
    out
}

/// A client that authenticates as `sa` in `namespace` with a fresh TokenRequest token, to the
/// admin kubeconfig's server and CA.
async fn client_as(admin: &Client, namespace: &str, sa: &str) -> Client {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
        .create_token_request(sa, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {namespace}/{sa}: {e}"))
        .status
        .expect("TokenRequest status")
        .token;
    let kubeconfig = Kubeconfig::read_from(support::cluster::kubeconfig().await).unwrap();
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    config.auth_info = AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    Client::try_from(config).unwrap()
}

/// Whether the client's own identity may do `verb` on `group`/`resource` (`resource/sub` for a
/// subresource) in `namespace` (None: cluster-wide), by SelfSubjectAccessReview.
async fn may(
    client: &Client,
    namespace: Option<&str>,
    group: &str,
    resource: &str,
    verb: &str,
) -> bool {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_string())),
        None => (resource, None),
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: namespace.map(str::to_string),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource,
                verb: Some(verb.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    answer.status.expect("review status").allowed
}

/// The triples of `rules` that `client` is denied in `namespace` (cluster-scoped resources are
/// checked cluster-wide).
async fn denied(client: &Client, namespace: &str, rules: &[Rule]) -> BTreeSet<Triple> {
    let mut out = BTreeSet::new();
    for rule in rules {
        let ns = (!rule.cluster_scoped()).then_some(namespace);
        for verb in rule.verbs {
            if !may(client, ns, rule.group, rule.resource, verb).await {
                out.insert((
                    rule.group.to_string(),
                    rule.resource.to_string(),
                    verb.to_string(),
                ));
            }
        }
    }
    out
}

/// Waits until RBAC has caught up (the authorizer reads from a cache) and `client` is denied
/// exactly `expected` of `rules` in `namespace`.
async fn wait_denied(
    client: &Client,
    namespace: &str,
    rules: &[Rule],
    expected: &BTreeSet<Triple>,
    who: &str,
) {
    eventually(
        &format!("{who} to be denied exactly {expected:?}"),
        Duration::from_secs(20),
        || async {
            let d = denied(client, namespace, rules).await;
            if &d == expected {
                Ok(())
            } else {
                Err(format!("denied {d:?}"))
            }
        },
    )
    .await;
}

/// A Role in `namespace` from `rules`, without the triple `drop`.
fn role_from(name: &str, rules: &[Rule], drop: (&str, &str, &str)) -> DynamicObject {
    let rules: Vec<serde_json::Value> = rules
        .iter()
        .map(|r| {
            let verbs: Vec<&str> = r
                .verbs
                .iter()
                .copied()
                .filter(|v| (r.group, r.resource, *v) != drop)
                .collect();
            json!({ "apiGroups": [r.group], "resources": [r.resource], "verbs": verbs })
        })
        .collect();
    serde_json::from_value(json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": { "name": name }, "rules": rules }))
        .unwrap()
}

/// Reconcile failures counted as `forbidden` (non-zero series).
fn forbidden(metrics: &str) -> Vec<&str> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("error=\"forbidden\""))
        .filter(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) != Some(0.0))
        .collect()
}

/// YAML writes `1.0` and `1` alike once Helm has parsed it; compare numbers by value.
fn numbers_as_f64(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.into_iter().map(numbers_as_f64).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (k, numbers_as_f64(v))).collect())
        }
        other => other,
    }
}

fn object(value: serde_json::Value) -> DynamicObject {
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn chart_rbac_is_exactly_what_the_operator_needs() {
    let admin = support::client().await;
    let ns = TestNamespace::new(&admin, "rbac").await;
    let release = format!("capt-fargate-{}", ns.name);
    let watched = format!("{release}-ns");
    let fullname = |name: &str| format!("fullnameOverride={name}");

    // a) The rendered rules are RULES and LEADER_ELECTION_RULES, nothing more or less: all in
    //    a ClusterRole by default, and split by scope when one namespace is watched.
    let objects = render(
        &ns.name,
        &["crds.install=false".into(), fullname(&release)],
        &[],
    )
    .await;
    assert!(
        !objects
            .iter()
            .any(|o| kind(o) == "CustomResourceDefinition")
    );
    assert_eq!(
        granted(&objects, "ClusterRole", &release),
        set(RULES),
        "ClusterRole vs capt_fargate::rbac::RULES"
    );
    assert_eq!(
        granted(&objects, "Role", &format!("{release}-leader-election")),
        set(LEADER_ELECTION_RULES),
        "leader election Role"
    );
    let roles = objects.iter().filter(|o| kind(o).ends_with("Role")).count();
    assert_eq!(roles, 2, "one ClusterRole and one Role");

    let scoped = render(
        &ns.name,
        &[
            "crds.install=false".into(),
            fullname(&watched),
            format!("watchNamespace={}", ns.name),
            "watchFilter=team-a".into(),
        ],
        &[],
    )
    .await;
    let cluster_rules: Vec<Rule> = RULES.iter().copied().filter(Rule::cluster_scoped).collect();
    let namespaced_rules: Vec<Rule> = RULES
        .iter()
        .copied()
        .filter(|r| !r.cluster_scoped())
        .collect();
    assert_eq!(
        granted(&scoped, "ClusterRole", &watched),
        set(&cluster_rules),
        "watchNamespace: ClusterRole holds only cluster-scoped resources"
    );
    assert_eq!(
        granted(&scoped, "Role", &watched),
        set(&namespaced_rules),
        "watchNamespace: Role"
    );
    assert_eq!(
        granted(&scoped, "Role", &format!("{watched}-leader-election")),
        set(LEADER_ELECTION_RULES)
    );
    let deployment = scoped.iter().find(|o| kind(o) == "Deployment").unwrap();
    let env = &deployment.data["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "WATCH_NAMESPACE" && e["value"] == ns.name.as_str()),
        "{env}"
    );
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "WATCH_FILTER" && e["value"] == "team-a"),
        "watchFilter reaches the operator: {env}"
    );

    // The chart's CRDs are the generated ones, marked to survive uninstall.
    let crds = render(
        &ns.name,
        &[fullname(&release)],
        &["--show-only", "templates/crds.yaml"],
    )
    .await;
    let generated = capt_fargate::crdgen::crds();
    assert_eq!(crds.len(), generated.len());
    for crd in &generated {
        let rendered = crds
            .iter()
            .find(|c| c.name_any() == crd.name_any())
            .unwrap_or_else(|| panic!("{} not in the chart", crd.name_any()));
        assert_eq!(
            numbers_as_f64(rendered.data["spec"].clone()),
            numbers_as_f64(serde_json::to_value(&crd.spec).unwrap()),
            "{} differs from the generated CRD",
            crd.name_any()
        );
        assert_eq!(rendered.annotations()["helm.sh/resource-policy"], "keep");
        for (k, v) in crd.labels() {
            assert_eq!(
                rendered.labels().get(k),
                Some(v),
                "{} label {k}",
                crd.name_any()
            );
        }
    }

    for obj in objects.into_iter().chain(scoped) {
        support::apply_dynamic(&admin, &ns.name, obj).await.unwrap();
    }

    // c) Every permission of RULES is granted to the chart's ServiceAccount, and what the
    //    operator never does is not.
    let sa_client = client_as(&admin, &ns.name, &release).await;
    let none = BTreeSet::new();
    wait_denied(
        &sa_client,
        &ns.name,
        RULES,
        &none,
        "the chart's ServiceAccount",
    )
    .await;
    wait_denied(
        &sa_client,
        &ns.name,
        LEADER_ELECTION_RULES,
        &none,
        "the chart's ServiceAccount (leases)",
    )
    .await;
    for &(group, resource, verb) in FORBIDDEN {
        assert!(
            !may(&sa_client, Some(&ns.name), group, resource, verb).await,
            "the chart grants {verb} {group}/{resource}, which the code never does"
        );
    }
    // Leases only in the release namespace.
    assert!(
        !may(
            &sa_client,
            Some("default"),
            "coordination.k8s.io",
            "leases",
            "get"
        )
        .await,
        "leases granted outside the release namespace"
    );
    // The token really is the ServiceAccount's, not the admin's.
    let err = Api::<Namespace>::all(sa_client.clone())
        .list(&ListParams::default())
        .await
        .expect_err("the ServiceAccount cannot list namespaces");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.is_forbidden()),
        "{err}"
    );

    // The watchNamespace release: namespaced permissions only in that namespace.
    let scoped_client = client_as(&admin, &ns.name, &watched).await;
    wait_denied(
        &scoped_client,
        &ns.name,
        RULES,
        &none,
        "the watchNamespace ServiceAccount",
    )
    .await;
    let outside = denied(&scoped_client, "default", &namespaced_rules).await;
    assert_eq!(
        outside,
        set(&namespaced_rules),
        "watchNamespace: namespaced permissions leak outside the watched namespace"
    );

    // The check can fail: a ServiceAccount with the same rules but without `delete` on
    // workspacetemplateapplies is denied exactly that, which the chart's is allowed.
    let reduced = "reduced";
    let dropped = (
        "infrastructure.cluster.x-k8s.io",
        "workspacetemplateapplies",
        "delete",
    );
    for obj in [
        object(
            json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": reduced } }),
        ),
        role_from(reduced, RULES, dropped),
        object(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": { "name": reduced },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": reduced },
            "subjects": [{ "kind": "ServiceAccount", "name": reduced, "namespace": ns.name }],
        })),
    ] {
        support::apply_dynamic(&admin, &ns.name, obj).await.unwrap();
    }
    let reduced_client = client_as(&admin, &ns.name, reduced).await;
    // Only namespaced rules are in the Role; the cluster-scoped ones are denied too.
    let mut expected: BTreeSet<Triple> = set(&cluster_rules);
    expected.insert((dropped.0.into(), dropped.1.into(), dropped.2.into()));
    wait_denied(
        &reduced_client,
        &ns.name,
        RULES,
        &expected,
        "the reduced ServiceAccount",
    )
    .await;
    assert!(
        !may(
            &reduced_client,
            Some(&ns.name),
            dropped.0,
            dropped.1,
            dropped.2
        )
        .await
    );
    assert!(may(&sa_client, Some(&ns.name), dropped.0, dropped.1, dropped.2).await);

    // b) The whole lifecycle with the chart's ServiceAccount; the simulated provider (which
    //    stands in for provider-terraform and its own permissions) uses the admin client.
    let root = support::repo_root();
    support::apply_yaml(&admin, &ns.name, &root.join("config/workspacetemplates")).await;
    support::apply_yaml(&admin, &ns.name, &root.join("config/samples/cluster.yaml")).await;
    support::apply_yaml(
        &admin,
        &ns.name,
        &root.join("config/samples/captcontrolplane.yaml"),
    )
    .await;
    // The VPC from the sample CAPTCluster, so its controller runs with the chart's rules too.
    support::apply_yaml(
        &admin,
        &ns.name,
        &root.join("config/samples/captcluster.yaml"),
    )
    .await;
    let operator = Operator::start(sa_client.clone(), &ns.name);
    let provider = SimulatedProvider::start(admin.clone(), &ns.name, Duration::from_millis(300));

    let cps: Api<CAPTControlPlane> = Api::namespaced(admin.clone(), &ns.name);
    eventually(
        "4 Fargate profiles ready with the chart's ServiceAccount",
        WAIT,
        || async {
            let cp = cps.get(CP).await.map_err(|e| e.to_string())?;
            let status = cp.status.clone().unwrap_or_default();
            let ready = status.fargate_profiles.iter().filter(|p| p.ready).count();
            if status.fargate_profiles.len() == 4 && ready == 4 {
                Ok(())
            } else {
                Err(format!(
                    "{:?}; forbidden: {:?}",
                    status.fargate_profiles,
                    forbidden(&operator.metrics.encode())
                ))
            }
        },
    )
    .await;
    let capt_clusters: Api<CAPTCluster> = Api::namespaced(admin.clone(), &ns.name);
    assert!(
        capt_clusters
            .get(CP)
            .await
            .unwrap()
            .status
            .is_some_and(|s| s.ready),
        "the CAPTCluster is provisioned with the chart's ServiceAccount"
    );
    capt_clusters.delete(CP, &Default::default()).await.unwrap();
    cps.delete(CP, &Default::default()).await.unwrap();
    eventually("control plane and CAPTCluster gone", WAIT, || async {
        let cp = cps.get_opt(CP).await.map_err(|e| e.to_string())?;
        let c = capt_clusters.get_opt(CP).await.map_err(|e| e.to_string())?;
        match (cp, c) {
            (None, None) => Ok(()),
            (cp, c) => Err(format!(
                "control plane finalizers {:?}, CAPTCluster finalizers {:?}; forbidden: {:?}",
                cp.map(|cp| cp.finalizers().to_vec()),
                c.map(|c| c.finalizers().to_vec()),
                forbidden(&operator.metrics.encode())
            )),
        }
    })
    .await;
    let lp = ListParams::default().labels(&format!("{}={}", names::LABEL_APPLY_NAMESPACE, ns.name));
    assert!(
        Api::<Workspace>::all(admin.clone())
            .list(&lp)
            .await
            .unwrap()
            .items
            .is_empty(),
        "no Workspace left"
    );
    let metrics = operator.metrics.encode();
    assert!(
        forbidden(&metrics).is_empty(),
        "the operator was forbidden something:\n{metrics}"
    );
    // Events are only logged when they fail, so look for them.
    let events = Api::<Event>::namespaced(admin.clone(), &ns.name)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert!(
        events
            .iter()
            .any(|e| e.reporting_controller.as_deref() == Some(names::FIELD_MANAGER)),
        "the operator published no event with the chart's ServiceAccount"
    );
    assert!(
        provider.rejections().is_empty(),
        "{:?}",
        provider.rejections()
    );
    operator.stop().await;
    provider.stop().await;

    // Leader election with the chart's ServiceAccount, in the release namespace.
    let election = Election {
        lease: "capt-fargate-leader".into(),
        namespace: ns.name.clone(),
        identity: "rbac-test".into(),
        duration: Duration::from_secs(15),
    };
    let (mut leading, task) = leader::elect(sa_client.clone(), election)
        .await
        .expect("leader election starts with the chart's ServiceAccount");
    tokio::time::timeout(Duration::from_secs(30), leading.wait_for(|l| *l))
        .await
        .expect("became leader within 30s with the chart's ServiceAccount")
        .unwrap();
    drop(leading);
    // Dropping the receiver releases the lease (a patch).
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("lease released")
        .unwrap()
        .expect("lease released without error");

    for name in [&release, &watched] {
        let _ = Api::<ClusterRoleBinding>::all(admin.clone())
            .delete(name, &Default::default())
            .await;
        let _ = Api::<ClusterRole>::all(admin.clone())
            .delete(name, &Default::default())
            .await;
    }
    ns.delete().await;
}
