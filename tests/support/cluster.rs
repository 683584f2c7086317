//! The real control plane from `tests/cluster/up`: started (or reused) once per test process.
//! If it cannot start, every test fails with the script's output; none is skipped.

use std::path::PathBuf;
use std::process::Command;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::sync::OnceCell;

static KUBECONFIG: OnceCell<PathBuf> = OnceCell::const_new();

/// Path of the admin kubeconfig of the running test cluster.
pub async fn kubeconfig() -> PathBuf {
    KUBECONFIG
        .get_or_init(|| run_up("tests/cluster/up", "the test control plane"))
        .await
        .clone()
}

/// Runs the `up` script at `script` (relative to the repository root), which starts or reuses
/// `what` and prints its admin kubeconfig's path last, and returns that path. A script that
/// fails fails the test with its output: nothing is skipped.
pub async fn run_up(script: &str, what: &str) -> PathBuf {
    run_up_with(script, &[], what).await
}

/// Like [`run_up`], with arguments for the script (e.g. an instance name).
pub async fn run_up_with(script: &str, args: &[&str], what: &str) -> PathBuf {
    let up = super::repo_root().join(script);
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || Command::new(&up).args(&args).output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    if !out.status.success() {
        panic!(
            "{what} did not start ({script} exited with {}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("up prints the kubeconfig path last")
            .trim(),
    )
}

/// A client with the admin kubeconfig.
pub async fn client() -> Client {
    let path = kubeconfig().await;
    client_from(&path).await
}

/// A client for a kubeconfig file.
pub async fn client_from(path: &std::path::Path) -> Client {
    let kc =
        Kubeconfig::read_from(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}
