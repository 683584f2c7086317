//! The binary: `crds`, `render`, and `run` with probes, metrics, leader election and SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

use crate::support::{self, TestNamespace, eventually};

const BIN: &str = env!("CARGO_BIN_EXE_capt-fargate");

/// Kills the child if the test fails before it stops it.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP GET; returns (status code, body).
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

#[test]
fn crds_prints_the_committed_crds() {
    let out = Command::new(BIN).arg("crds").output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let mut committed = String::new();
    let files = std::fs::read_dir(support::repo_root().join("crds"))
        .unwrap()
        .count();
    // Printed in the order of `crdgen::crds()`, one committed file each.
    let crds = capt_fargate::crdgen::crds();
    for crd in &crds {
        let name = capt_fargate::crdgen::file_name(crd);
        committed.push_str(
            &std::fs::read_to_string(support::repo_root().join("crds").join(name)).unwrap(),
        );
    }
    assert_eq!(files, crds.len());
    assert_eq!(printed, committed);
}

#[test]
fn render_prints_the_applies_of_a_manifest_and_rejects_bad_input() {
    let sample = support::repo_root().join("config/samples/captcontrolplane.yaml");
    let out = Command::new(BIN)
        .args(["render", sample.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert_eq!(yaml.matches("kind: WorkspaceTemplateApply").count(), 3);
    for name in [
        "demo-cluster-eks-controlplane-apply".to_string(),
        capt_fargate::names::profile_apply_name("demo-cluster", "monitoring"),
        capt_fargate::names::profile_apply_name("demo-cluster", "batch-jobs"),
    ] {
        assert!(
            yaml.contains(&format!("name: {name}\n")),
            "{name} missing:\n{yaml}"
        );
    }
    let bad = Command::new(BIN)
        .args(["render", "/nonexistent.yaml"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot read /nonexistent.yaml"));
}

#[tokio::test]
async fn run_serves_probes_and_metrics_takes_the_lease_and_stops_on_sigterm() {
    let client = support::client().await;
    let kubeconfig = support::cluster::kubeconfig().await;
    let ns = TestNamespace::new(&client, "cli").await;
    let (metrics, health) = (free_port(), free_port());
    let child = Command::new(BIN)
        .args([
            "run",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--namespace",
            &ns.name,
        ])
        .args([
            "--lease-namespace",
            &ns.name,
            "--identity",
            "cli-test",
            "--log-format",
            "text",
        ])
        .args([
            "--metrics-addr",
            &format!("127.0.0.1:{metrics}"),
            "--health-addr",
            &format!("127.0.0.1:{health}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = KillOnDrop(Some(child));

    eventually(
        "/healthz and /readyz answer 200",
        Duration::from_secs(30),
        || async {
            match (http_get(health, "/healthz"), http_get(health, "/readyz")) {
                (Ok((200, h)), Ok((200, _))) if h == "ok" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let holder = eventually("lease held", Duration::from_secs(30), || async {
        let lease = leases
            .get_opt("capt-fargate-leader")
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no lease")?;
        lease
            .spec
            .and_then(|s| s.holder_identity)
            .ok_or_else(|| "no holder".to_string())
    })
    .await;
    assert_eq!(holder, "cli-test");
    let body = eventually("metrics", Duration::from_secs(30), || async {
        match http_get(metrics, "/metrics") {
            Ok((200, body)) if body.contains("capt_fargate_reconcile_duration_seconds") => Ok(body),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(
        body.contains("# TYPE capt_fargate_reconciles counter"),
        "{body}"
    );

    // SIGTERM: a clean exit with status 0.
    let mut child = guard.0.take().unwrap();
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exited = eventually("exit after SIGTERM", Duration::from_secs(30), || {
        let status = child.try_wait();
        async move {
            match status {
                Ok(Some(status)) => Ok(status),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    assert!(exited.success(), "exit status {exited:?}");
    ns.delete().await;
}

#[tokio::test]
async fn run_fails_with_a_clear_message_when_a_probe_port_is_taken() {
    let kubeconfig = support::cluster::kubeconfig().await;
    // Held for the whole test, so the operator cannot bind it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let child = Command::new(BIN)
        .args(["run", "--kubeconfig", kubeconfig.to_str().unwrap()])
        .args(["--leader-election", "false", "--log-format", "text"])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--health-addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = KillOnDrop(Some(child));
    // An operator that ignored the bind error would keep running without probes.
    let status = eventually("run exits", Duration::from_secs(30), || {
        let status = guard.0.as_mut().unwrap().try_wait();
        async move {
            match status {
                Ok(Some(status)) => Ok(status),
                other => Err(format!("still running: {other:?}")),
            }
        }
    })
    .await;
    drop(taken);
    assert!(!status.success(), "exit status {status:?}");
    let mut stderr = String::new();
    let mut child = guard.0.take().unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    child.wait().unwrap();
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}"))
            && stderr.contains("--health-addr"),
        "{stderr}"
    );
}
