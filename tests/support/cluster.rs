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
        .get_or_init(|| async {
            let up = super::repo_root().join("tests/cluster/up");
            let out = tokio::task::spawn_blocking(move || Command::new(&up).output())
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("cannot run tests/cluster/up: {e}"));
            if !out.status.success() {
                panic!(
                    "the test control plane did not start (tests/cluster/up exited with {}):\n{}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let stdout = String::from_utf8_lossy(&out.stdout);
            PathBuf::from(stdout.lines().last().expect("up prints the kubeconfig path last").trim())
        })
        .await
        .clone()
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
