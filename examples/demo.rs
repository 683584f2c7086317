//! Quick start: starts the local control plane, installs the CRDs, the WorkspaceTemplates and
//! the samples, runs the operator with the simulated provider-terraform, and shows the Fargate
//! profiles converge. Run with `tests/demo`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use kube::Api;

use capt_fargate::api::CAPTControlPlane;

#[tokio::main]
async fn main() {
    if std::env::var_os("DEMO_DEBUG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter("capt_fargate=debug,kube_runtime=debug")
            .init();
    }
    let kubeconfig = support::cluster::kubeconfig().await;
    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "capt-demo").await;
    let root = support::repo_root();
    println!(
        "namespace {}: applying config/workspacetemplates and config/samples",
        ns.name
    );
    support::apply_yaml(&client, &ns.name, &root.join("config/workspacetemplates")).await;
    support::apply_yaml(&client, &ns.name, &root.join("config/samples/cluster.yaml")).await;
    support::apply_yaml(
        &client,
        &ns.name,
        &root.join("config/samples/captcontrolplane.yaml"),
    )
    .await;
    // The VPC comes from the CAPTCluster, a moment later, to show the profiles waiting for it.
    let captcluster = root.join("config/samples/captcluster.yaml");

    let operator = support::Operator::start(client.clone(), &ns.name);
    let provider = support::simulated_provider::SimulatedProvider::start(
        client.clone(),
        &ns.name,
        Duration::from_secs(1),
    );

    let api: Api<CAPTControlPlane> = Api::namespaced(client.clone(), &ns.name);
    let start = Instant::now();
    let mut vpc_created = false;
    let mut last = String::new();
    loop {
        let cp = api
            .get("demo-cluster")
            .await
            .expect("the sample control plane exists");
        let status = cp.status.clone().unwrap_or_default();
        let line = status
            .fargate_profiles
            .iter()
            .map(|p| {
                format!(
                    "{}={:?}",
                    p.name,
                    p.phase
                        .unwrap_or(capt_fargate::api::FargateProfilePhase::Pending)
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
        if line != last {
            println!(
                "{:>5.1}s  ready={} fargate={} {}",
                start.elapsed().as_secs_f32(),
                status.ready,
                status.fargate_profiles_summary.clone().unwrap_or_default(),
                line
            );
            last = line;
        }
        let total = status.fargate_profiles.len();
        if total > 0 && status.fargate_profiles.iter().all(|p| p.ready) {
            break;
        }
        if !vpc_created && start.elapsed() > Duration::from_secs(3) {
            println!(
                "        applying config/samples/captcluster.yaml: the CAPTCluster creates the VPC workspace"
            );
            support::apply_yaml(&client, &ns.name, &captcluster).await;
            vpc_created = true;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "did not converge within 120s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    operator.stop().await;
    provider.stop().await;

    let out = std::process::Command::new("kubectl")
        .args([
            "--kubeconfig",
            &kubeconfig.display().to_string(),
            "-n",
            &ns.name,
            "get",
            "captclusters,captcontrolplanes,workspacetemplateapplies",
        ])
        .output()
        .expect("kubectl runs");
    println!(
        "\n$ kubectl -n {} get captclusters,captcontrolplanes,workspacetemplateapplies\n{}",
        ns.name,
        String::from_utf8_lossy(&out.stdout)
    );
    println!(
        "The cluster keeps running: export KUBECONFIG={}  (stop it with tests/cluster/down)",
        kubeconfig.display()
    );
}
