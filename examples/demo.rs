//! Quick start, as a Cluster API user sees it: on a management cluster with the real CAPI
//! manager (tests/capi/up), applies the WorkspaceTemplates and the sample Cluster, CAPTCluster
//! and CAPTControlPlane, runs the operator with the simulated provider-terraform, prints the
//! Cluster's conditions and the Fargate profiles as they turn, a summary, and then deletes the
//! Cluster and shows the teardown until nothing is left. Run with `tests/demo`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{DeleteParams, DynamicObject, ListParams};
use kube::{Api, Client, ResourceExt};

use k8s_openapi::api::core::v1::Secret;

use capt_fargate::api::{
    CAPTCluster, CAPTControlPlane, FargateProfilePhase, Workspace, WorkspaceTemplateApply,
};
use capt_fargate::aws::token::StaticTokenSource;
use capt_fargate::names;

use support::samples::CP;
use support::simulated_provider::SimulatedProvider;

/// The Cluster conditions shown as they turn, in the order they usually do.
const CONDITIONS: &[&str] = &[
    "InfrastructureReady",
    "ControlPlaneInitialized",
    "ControlPlaneAvailable",
    "RemoteConnectionProbe",
    "WorkersAvailable",
    "Available",
];

/// How long the demo waits for the cluster to converge, and for the teardown.
const LIMIT: Duration = Duration::from_secs(180);

/// `  12.3s  text`.
fn say(start: Instant, text: &str) {
    println!("{:>6.1}s  {text}", start.elapsed().as_secs_f32());
}

/// Runs a command with the management cluster's kubeconfig and prints it and its output.
fn show(kubeconfig: &Path, program: &str, args: &[&str]) {
    let path = if program == "clusterctl" {
        support::repo_root().join("target/capi/bin/clusterctl")
    } else {
        program.into()
    };
    let mut cmd = std::process::Command::new(path);
    cmd.args(args).arg("--kubeconfig").arg(kubeconfig);
    if program == "clusterctl" {
        // clusterctl keeps its state under $XDG_CONFIG_HOME; keep it out of the user's home.
        let dir = support::repo_root().join("target/demo/clusterctl");
        std::fs::create_dir_all(&dir).unwrap();
        cmd.env("XDG_CONFIG_HOME", &dir);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    println!(
        "\n$ {program} {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `type=status (reason)` of the Cluster's v1beta2 condition `type_`.
fn condition(cluster: &DynamicObject, type_: &str) -> Option<(String, String)> {
    let c = cluster.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?;
    Some((
        c["status"].as_str().unwrap_or("?").to_string(),
        c["reason"].as_str().unwrap_or("").to_string(),
    ))
}

/// `fargate 2/4  kube-system=Ready karpenter=Ready monitoring=Creating batch-jobs=Pending`.
fn profiles_line(cp: &CAPTControlPlane) -> String {
    let status = cp.status.clone().unwrap_or_default();
    let profiles = status
        .fargate_profiles
        .iter()
        .map(|p| {
            format!(
                "{}={:?}",
                p.name,
                p.phase.unwrap_or(FargateProfilePhase::Pending)
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "fargate {}  {profiles}",
        status.fargate_profiles_summary.unwrap_or_default()
    )
}

/// Checks that the kubeconfig the operator keeps in `<cluster>-kubeconfig` reaches the
/// "EKS" API server, and returns that server's version (nothing of the Secret is printed).
async fn kubeconfig_reaches(client: &Client, namespace: &str) -> Result<String, String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get(&format!("{CP}-kubeconfig"))
        .await
        .map_err(|e| e.to_string())?;
    let value = secret
        .data
        .and_then(|d| d.get("value").cloned())
        .ok_or("no value key")?;
    let text = String::from_utf8(value.0).map_err(|e| e.to_string())?;
    let kc = kube::config::Kubeconfig::from_yaml(&text).map_err(|e| e.to_string())?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| e.to_string())?;
    let remote = Client::try_from(config).map_err(|e| e.to_string())?;
    let version = remote
        .apiserver_version()
        .await
        .map_err(|e| e.to_string())?;
    Ok(version.git_version)
}

/// How many WorkspaceTemplateApplies and Secrets are left in `namespace`, and Workspaces of it.
async fn left_over(client: &Client, namespace: &str) -> [(&'static str, usize); 3] {
    let applies: Api<WorkspaceTemplateApply> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default();
    [
        (
            "WorkspaceTemplateApplies",
            applies.list(&lp).await.unwrap().items.len(),
        ),
        ("Workspaces", workspaces_of(client, namespace).await.len()),
        ("Secrets", secrets.list(&lp).await.unwrap().items.len()),
    ]
}

/// The (cluster-scoped) Workspaces of the applies in `namespace`.
async fn workspaces_of(client: &Client, namespace: &str) -> Vec<Workspace> {
    let lp = ListParams::default().labels(&format!("{}={namespace}", names::LABEL_APPLY_NAMESPACE));
    Api::<Workspace>::all(client.clone())
        .list(&lp)
        .await
        .unwrap()
        .items
}

#[tokio::main]
async fn main() {
    if std::env::var_os("DEMO_DEBUG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter("capt_fargate=debug,kube_runtime=debug")
            .init();
    }
    let kubeconfig = support::capi::kubeconfig().await;
    let client = support::capi::client().await;
    let ns = support::TestNamespace::new(&client, "capt-demo").await;
    let root = support::repo_root();
    println!(
        "management cluster with the Cluster API v1.14.2 manager: {}\n",
        kubeconfig.display()
    );
    println!(
        "kubectl -n {} apply -f config/workspacetemplates/ -f config/samples/cluster.yaml \\\n    -f config/samples/captcluster.yaml -f config/samples/captcontrolplane.yaml",
        ns.name
    );
    support::apply_yaml(&client, &ns.name, &root.join("config/workspacetemplates")).await;
    for sample in ["cluster", "captcluster", "captcontrolplane"] {
        let path = root.join(format!("config/samples/{sample}.yaml"));
        support::apply_yaml(&client, &ns.name, &path).await;
    }

    // The simulated provider-terraform (each Fargate profile takes 1 s) reports the management
    // cluster's own API server as the EKS cluster, and the operator's "IAM token" is a
    // ServiceAccount token for it, so CAPI really connects with the kubeconfig we write.
    let provider = SimulatedProvider::start(client.clone(), &ns.name, Duration::from_secs(1));
    provider.report_test_cluster(&kubeconfig);
    let token = support::capi::admin_token(&client, &ns.name, "eks-admin").await;
    let operator = support::Operator::start_with(client.clone(), &ns.name, move |ctx| {
        ctx.token_source = Arc::new(StaticTokenSource::new(token));
    });
    println!("operator and simulated provider-terraform started\n");

    let clusters = support::capi::clusters(&client, &ns.name);
    let cps: Api<CAPTControlPlane> = Api::namespaced(client.clone(), &ns.name);
    let infra: Api<CAPTCluster> = Api::namespaced(client.clone(), &ns.name);
    let start = Instant::now();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut became_true: BTreeMap<&str, Duration> = BTreeMap::new();
    let mut profiles_ready = None;
    loop {
        let cluster = clusters.get(CP).await.expect("the sample Cluster exists");
        let cp = cps.get(CP).await.expect("the sample control plane exists");
        let mut changes = Vec::new();
        let phase = cluster.data["status"]["phase"]
            .as_str()
            .unwrap_or("-")
            .to_string();
        changes.push(("phase".to_string(), format!("Cluster phase {phase}")));
        for &type_ in CONDITIONS {
            let (status, reason) = condition(&cluster, type_).unwrap_or(("-".into(), "".into()));
            if status == "True" {
                became_true.entry(type_).or_insert(start.elapsed());
            }
            let reason = if reason.is_empty() {
                String::new()
            } else {
                format!(" ({reason})")
            };
            changes.push((
                type_.to_string(),
                format!("Cluster {type_}={status}{reason}"),
            ));
        }
        changes.push(("profiles".to_string(), profiles_line(&cp)));
        for (key, line) in changes {
            // Nothing to show until CAPI or the operator wrote a status.
            let unset = line.ends_with(" -") || line.ends_with("=-") || line.ends_with("  ");
            if !unset && seen.get(&key) != Some(&line) {
                say(start, &line);
                seen.insert(key, line);
            }
        }
        let status = cp.status.clone().unwrap_or_default();
        let all_ready =
            !status.fargate_profiles.is_empty() && status.fargate_profiles.iter().all(|p| p.ready);
        if all_ready && profiles_ready.is_none() {
            profiles_ready = Some(start.elapsed());
        }
        if all_ready && became_true.contains_key("Available") {
            break;
        }
        assert!(start.elapsed() < LIMIT, "did not converge within {LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The summary.
    let at = |type_: &str| {
        became_true
            .get(type_)
            .map(|d| format!("{:.1}s", d.as_secs_f32()))
            .unwrap_or_else(|| "-".into())
    };
    let cp = cps.get(CP).await.unwrap();
    let vpc = infra.get(CP).await.unwrap();
    let profiles = cp.status.clone().unwrap_or_default().fargate_profiles;
    let applies: Api<WorkspaceTemplateApply> = Api::namespaced(client.clone(), &ns.name);
    let applies = applies.list(&ListParams::default()).await.unwrap().items;
    let workspaces = workspaces_of(&client, &ns.name).await;
    println!("\n== summary");
    println!(
        "InfrastructureReady after {}, ControlPlaneAvailable after {}, Available after {}, {} Fargate profiles Ready after {:.1}s",
        at("InfrastructureReady"),
        at("ControlPlaneAvailable"),
        at("Available"),
        profiles.len(),
        profiles_ready.unwrap_or_default().as_secs_f32()
    );
    println!(
        "VPC {} (Workspace {}); {} WorkspaceTemplateApplies, {} Workspaces",
        vpc.status
            .as_ref()
            .and_then(|s| s.vpc_id.clone())
            .unwrap_or_default(),
        vpc.status
            .as_ref()
            .and_then(|s| s.vpc_workspace_name.clone())
            .unwrap_or_default(),
        applies.len(),
        workspaces.len()
    );
    match kubeconfig_reaches(&client, &ns.name).await {
        Ok(version) => println!(
            "Secret {CP}-kubeconfig (what `clusterctl get kubeconfig` returns) reaches the \"EKS\" API server, {version}"
        ),
        Err(e) => println!("Secret {CP}-kubeconfig does not connect: {e}"),
    }
    show(
        &kubeconfig,
        "kubectl",
        &[
            "-n",
            &ns.name,
            "get",
            "cluster,captcluster,captcontrolplane,secrets",
        ],
    );
    show(
        &kubeconfig,
        "clusterctl",
        &["describe", "cluster", CP, "-n", &ns.name],
    );

    // The teardown: `kubectl delete cluster`, then every object as it goes.
    let what: BTreeMap<String, String> = workspaces
        .iter()
        .map(|w| {
            let apply = w
                .annotations()
                .get(names::ANNOTATION_APPLY)
                .and_then(|a| a.split('/').nth(1))
                .unwrap_or("?")
                .to_string();
            (w.name_any(), apply)
        })
        .collect();
    println!("== teardown\n$ kubectl -n {} delete cluster {CP}", ns.name);
    clusters.delete(CP, &DeleteParams::default()).await.unwrap();
    let start = Instant::now();
    let mut destroyed = 0;
    let mut gone: BTreeMap<&str, bool> = BTreeMap::new();
    loop {
        let order = provider.observations.lock().unwrap().destroy_order.clone();
        for ws in &order[destroyed..] {
            let apply = what.get(ws).map(String::as_str).unwrap_or("?");
            say(
                start,
                &format!("destroyed Workspace {ws} (WorkspaceTemplateApply {apply})"),
            );
        }
        destroyed = order.len();
        let exists = [
            ("CAPTControlPlane", cps.get_opt(CP).await.unwrap().is_some()),
            ("CAPTCluster", infra.get_opt(CP).await.unwrap().is_some()),
            ("Cluster", clusters.get_opt(CP).await.unwrap().is_some()),
        ];
        for (kind, present) in exists {
            if !present && !gone.contains_key(kind) {
                say(start, &format!("{kind} {CP} deleted"));
                gone.insert(kind, true);
            }
        }
        let left = left_over(&client, &ns.name).await;
        if exists.iter().all(|(_, present)| !present) && left.iter().all(|(_, n)| *n == 0) {
            println!(
                "\nteardown done in {:.1}s: {}",
                start.elapsed().as_secs_f32(),
                left.iter()
                    .map(|(kind, n)| format!("{n} {kind}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "teardown not done within {LIMIT:?}; left: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    operator.stop().await;
    provider.stop().await;
    // The demo's namespace (templates, the ServiceAccount of the token) and its binding.
    let binding = format!("{}-eks-admin", ns.name);
    let _ = Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(client.clone())
        .delete(&binding, &DeleteParams::default())
        .await;
    ns.delete().await;
}
