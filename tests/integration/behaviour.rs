//! What the README promises a user, checked where it shows: the writes of a converged operator
//! (every one, counted by the API server's audit log), the status a user sees during a slow
//! rollout (pacing), a leader frozen past its Lease, SIGTERM in the middle of a rollout, and a
//! tag change applied in place.
//!
//! The operator runs as the real binary with leader election on where the behaviour belongs to
//! the process (Lease, signals), each under a client certificate of its own so that the audit
//! log names its writes.

use std::collections::BTreeMap;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use capt_fargate::api::conditions::find;
use capt_fargate::api::{CAPTControlPlane, CAPTControlPlaneStatus, FargateProfilePhase, Workspace};
use capt_fargate::names;

use crate::support::audit::{self, AuditLog, Write};
use crate::support::samples::{CP, Samples, profile};
use crate::support::{Operator, eventually};

/// Generous bound for anything to converge (the machine is small and shared).
const WAIT: Duration = Duration::from_secs(90);
const LEASE: &str = "capt-fargate-leader";

// ---------------------------------------------------------------------------------------------
// The operator as a child process
// ---------------------------------------------------------------------------------------------

/// The operator binary, namespace-scoped, with leader election on; SIGKILLed when dropped.
struct Process {
    identity: String,
    child: Option<Child>,
    status: Option<ExitStatus>,
    log: PathBuf,
    metrics_port: u16,
}

impl Process {
    /// Starts `capt-fargate run` with `kubeconfig`; `lease_seconds` None keeps the default.
    fn start(
        kubeconfig: &Path,
        namespace: &str,
        identity: &str,
        lease_seconds: Option<u64>,
    ) -> Process {
        let port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("behaviour");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("{namespace}-{identity}.log"));
        let metrics_port = port();
        let out = std::fs::File::create(&log).unwrap();
        // A static kubeconfig token (it never expires, so a converged operator has no
        // scheduled Secret write): the steady-state counts include the kubeconfig Secrets.
        let token = dir.join("static-token");
        std::fs::write(&token, "static-test-token\n").unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_capt-fargate"));
        command
            .env("CAPT_FARGATE_TEST_ONLY_STATIC_TOKEN_FILE", &token)
            .arg("run")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--namespace", namespace])
            .arg("--leader-election=true")
            .args(["--lease-namespace", namespace, "--lease-name", LEASE])
            .args(["--identity", identity])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
            .args(["--health-addr", &format!("127.0.0.1:{}", port())])
            .args(["--log-format", "text", "--log-level", "info"]);
        if let Some(seconds) = lease_seconds {
            command.args(["--lease-duration-seconds", &seconds.to_string()]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("starting the capt-fargate binary");
        println!(
            "started {identity} (pid {}), log {}",
            child.id(),
            log.display()
        );
        Process {
            identity: identity.into(),
            child: Some(child),
            status: None,
            log,
            metrics_port,
        }
    }

    /// `capt_fargate_reconciles_total`, summed over both controllers (curl is needed by
    /// `tests/cluster/up` anyway).
    fn reconciles(&self) -> u64 {
        let out = Command::new("curl")
            .args(["-fsS", "--max-time", "5"])
            .arg(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("capt_fargate_reconciles_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("started").id()
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`) with kill(1).
    fn signal(&self, signal: &str) {
        let out = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "kill -s {signal}: {out:?}");
    }

    /// The exit status once it exited.
    fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.as_mut().unwrap().try_wait().unwrap();
        }
        self.status
    }

    /// Waits up to `timeout` for it to exit.
    async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the tail of its log if it exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "{} exited with {status}; log tail (newest first):\n{}",
                self.identity,
                tail.join("\n")
            );
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn lease_holder(client: &kube::Client, ns: &str) -> Result<String, String> {
    Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt(LEASE)
        .await
        .map_err(|e| e.to_string())?
        .and_then(|l| l.spec?.holder_identity)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| "no holder".to_string())
}

async fn wait_for_holder(client: &kube::Client, ns: &str, identity: &str, within: Duration) {
    eventually(&format!("{identity} to hold the Lease"), within, || async {
        match lease_holder(client, ns).await {
            Ok(h) if h == identity => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// Writes that concern the samples of `samples`: anything in its namespace, and its
/// Workspaces (cluster-scoped, named after their applies).
fn of_samples(writes: Vec<Write>, samples: &Samples, workspaces: &[String]) -> Vec<Write> {
    writes
        .into_iter()
        .filter(|w| {
            w.namespace == samples.ns.name
                || (w.resource == "workspaces" && workspaces.contains(&w.name))
        })
        .collect()
}

/// The Workspace names of the samples' applies (the EKS cluster's and `profiles`').
fn workspace_names(samples: &Samples, profiles: &[&str]) -> Vec<String> {
    let mut applies = vec![names::eks_apply_name(CP)];
    applies.extend(profiles.iter().map(|p| names::profile_apply_name(CP, p)));
    applies
        .iter()
        .map(|a| names::workspace_name(&samples.ns.name, a))
        .collect()
}

/// Successful creates per (resource, name): each object of the rollout made exactly once.
fn creates(writes: &[Write]) -> BTreeMap<(String, String), usize> {
    let mut n = BTreeMap::new();
    for w in writes
        .iter()
        .filter(|w| w.verb == "create" && w.succeeded() && w.subresource.is_empty())
    {
        *n.entry((w.resource.clone(), w.name.clone())).or_default() += 1;
    }
    n
}

fn print_counts(title: &str, writes: &[Write]) {
    println!("{title}:");
    let mut by_user: BTreeMap<&str, Vec<Write>> = BTreeMap::new();
    for w in writes {
        by_user.entry(&w.user).or_default().push(w.clone());
    }
    for (user, list) in by_user {
        for ((verb, kind), n) in audit::count(&list) {
            println!("  {user:<40} {verb:<8} {kind:<40} {n}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. A converged operator writes nothing but its Lease renewals
// ---------------------------------------------------------------------------------------------

/// The window over which a converged system is watched.
const STEADY_WINDOW: Duration = Duration::from_secs(65);
/// The binary's default `--lease-duration-seconds`, and the renewal period that follows from
/// it (`src/leader.rs` renews halfway through the lease: 15 s lease, renewed 7 s before expiry).
const DEFAULT_LEASE_SECONDS: f64 = 15.0;
const RENEW_SECONDS: f64 = 8.0;

#[tokio::test]
async fn a_converged_or_restarted_operator_writes_nothing_but_its_lease_renewals() {
    let samples = Samples::start("steady", Duration::from_millis(300)).await;
    let ns = samples.ns.name.clone();
    let user = format!("operator-{ns}");
    let kubeconfig = audit::kubeconfig_for_user(&user, None).await;
    let log = AuditLog::open().await;
    let mut op = Process::start(&kubeconfig, &ns, "steady", None);
    samples.create_vpc_secret().await;
    samples.all_ready_within(4, WAIT).await;
    // The tail of the convergence: the reconciles that follow the last writes.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (from, start) = (Timestamp::now(), Instant::now());
    tokio::time::sleep(STEADY_WINDOW).await;
    let to = Timestamp::now();
    let seconds = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    op.assert_running();

    let workspaces = workspace_names(&samples, &["monitoring", "batch-jobs"]);
    let all = log.writes();
    let window: Vec<Write> = all
        .iter()
        .filter(|w| w.received >= from && w.received <= to)
        .cloned()
        .collect();
    // The log does show this operator's writes: the rollout before the window.
    let rollout = audit::count(
        &all.iter()
            .filter(|w| w.user == user && w.received < from)
            .cloned()
            .collect::<Vec<_>>(),
    );
    println!("the operator's writes until convergence: {rollout:?}");
    assert!(
        rollout.contains_key(&("create".into(), "workspacetemplateapplies".into()))
            && rollout.contains_key(&("patch".into(), "captcontrolplanes/status".into()))
            && rollout
                .get(&("create".into(), "secrets".into()))
                .is_some_and(|n| *n >= 2),
        "the audit log does not show the operator's rollout: {rollout:?}"
    );
    // The operator's writes anywhere, and anyone's to the samples' objects.
    let mut seen = of_samples(window.clone(), &samples, &workspaces);
    seen.extend(
        window
            .iter()
            .filter(|w| w.user == user && w.namespace != ns)
            .cloned(),
    );
    print_counts(
        &format!("writes in the {seconds:.0} s after convergence"),
        &seen,
    );
    let (leases, others): (Vec<Write>, Vec<Write>) =
        seen.into_iter().partition(|w| w.resource == "leases");
    assert!(
        others.is_empty(),
        "a converged system wrote: {:?}",
        others
            .iter()
            .map(|w| format!(
                "{} {} {} {}/{} ({})",
                w.user,
                w.verb,
                w.kind(),
                w.namespace,
                w.name,
                w.code
            ))
            .collect::<Vec<_>>()
    );
    assert!(
        leases
            .iter()
            .all(|w| w.user == user && w.name == LEASE && w.succeeded()),
        "Lease writes by someone else, or refused: {leases:?}"
    );
    let renewals = leases.len() as f64;
    let per_minute = renewals * 60.0 / seconds;
    println!(
        "Lease renewals: {renewals} in {seconds:.0} s ({per_minute:.1} per minute; one per {:.1} s)",
        seconds / renewals
    );
    // At least one renewal per lease duration (or it would have lost the Lease), and no more
    // than one per renewal period.
    assert!(
        renewals >= (seconds / DEFAULT_LEASE_SECONDS).floor()
            && renewals <= (seconds / RENEW_SECONDS).ceil() + 1.0,
        "{renewals} Lease renewals in {seconds:.0} s; expected about one per {RENEW_SECONDS} s"
    );
    assert_eq!(
        lease_holder(&samples.client, &ns).await.unwrap(),
        "steady",
        "the operator kept the Lease"
    );

    // A restarted operator reconciles everything once and writes nothing either.
    op.signal("TERM");
    let status = op.wait_exit(Duration::from_secs(25)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let from = Timestamp::now();
    let restarted = Process::start(&kubeconfig, &ns, "restarted", None);
    wait_for_holder(&samples.client, &ns, "restarted", WAIT).await;
    // Every object reconciled once after the restart (the control plane and its three
    // applies), and a moment for anything it would write.
    eventually(
        "the restarted operator's first reconciles",
        WAIT,
        || async {
            match restarted.reconciles() {
                n if n >= 4 => Ok(n),
                n => Err(format!("{n} reconciles")),
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let to = Timestamp::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after: Vec<Write> = of_samples(
        log.writes()
            .into_iter()
            .filter(|w| w.received >= from && w.received <= to)
            .collect(),
        &samples,
        &workspaces,
    );
    print_counts("writes after the restart", &after);
    let others: Vec<String> = after
        .iter()
        .filter(|w| w.resource != "leases")
        .map(|w| format!("{} {} {} {}", w.user, w.verb, w.kind(), w.name))
        .collect();
    assert!(
        others.is_empty(),
        "the restarted operator wrote: {others:?}"
    );
    println!("reconciles after the restart: {}", restarted.reconciles());
    drop(restarted);
    samples.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Status pacing: what a user sees of a slow rollout
// ---------------------------------------------------------------------------------------------

/// `src/status/pacing.rs`: progress-only status writes of one control plane at most this often
/// (one control plane rolling out).
const PROGRESS_INTERVAL: f64 = 20.0;
/// Timer and watch delays on a loaded machine.
const SLACK: f64 = 1.0;
/// "At once": a write that follows what caused it within this many seconds.
const AT_ONCE: f64 = 3.0;

/// One status write of the control plane, as a watch delivers it.
#[derive(Clone, Debug)]
struct Seen {
    at: f64,
    generation: Option<i64>,
    status: CAPTControlPlaneStatus,
}

impl Seen {
    fn line(&self) -> String {
        let phases: Vec<String> = self
            .status
            .fargate_profiles
            .iter()
            .map(|p| {
                format!(
                    "{}={:?}",
                    p.name,
                    p.phase.unwrap_or(FargateProfilePhase::Pending)
                )
            })
            .collect();
        format!(
            "{:>6.1}s  fargate={} {}",
            self.at,
            self.status
                .fargate_profiles_summary
                .clone()
                .unwrap_or_default(),
            phases.join(" ")
        )
    }

    fn conditions(&self) -> Vec<(String, String)> {
        self.status
            .conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect()
    }
}

/// `status` without what a rollout's progress changes (the profiles, their summary and the
/// conditions): every other status field, as the operator's pacing compares them.
fn rest(status: &CAPTControlPlaneStatus) -> CAPTControlPlaneStatus {
    CAPTControlPlaneStatus {
        conditions: vec![],
        fargate_profiles: vec![],
        fargate_profiles_summary: None,
        ..status.clone()
    }
}

/// Why a status write may not wait, by the README's list ("a failure, a deletion, a condition
/// turning, a new generation or the last profile becoming ready"), and any other status field
/// changing; None for progress only.
fn urgent(old: &Seen, new: &Seen) -> Option<&'static str> {
    let phases = |s: &Seen| {
        s.status
            .fargate_profiles
            .iter()
            .filter_map(|p| p.phase)
            .collect::<Vec<_>>()
    };
    let names = |s: &Seen| {
        s.status
            .fargate_profiles
            .iter()
            .map(|p| p.name.clone())
            .collect::<Vec<_>>()
    };
    if phases(new).contains(&FargateProfilePhase::Failed) {
        Some("failure")
    } else if phases(new).contains(&FargateProfilePhase::Deleting) {
        Some("deletion")
    } else if old.conditions() != new.conditions() {
        Some("condition")
    } else if old.status.observed_generation != new.status.observed_generation
        || names(old) != names(new)
    {
        Some("generation")
    } else if rest(&old.status) != rest(&new.status) {
        // Every other status field (the Cluster API contract's version, initialization and
        // ready among them): the EKS Workspace reports its outputs with `Creating`, before it
        // is `Available`.
        Some("contract")
    } else if new.status.fargate_profiles.iter().all(|p| p.ready) {
        Some("all ready")
    } else {
        None
    }
}

#[tokio::test]
async fn a_slow_rollout_shows_progress_every_20_s_and_failures_deletions_and_the_end_at_once() {
    // Six additional profiles of 4 s each: a rollout of about 30 s, long enough for the pacing
    // to show.
    let samples = Samples::start("pacing", Duration::from_secs(4)).await;
    let extra = ["p3", "p4", "p5", "p6"];
    let mut list: Vec<Value> = samples
        .cps()
        .get(CP)
        .await
        .unwrap()
        .spec
        .additional_fargate_profiles
        .unwrap()
        .iter()
        .map(|p| serde_json::to_value(p).unwrap())
        .collect();
    list.extend(extra.iter().map(|p| profile(p, p)));
    samples
        .patch_spec(json!({ "additionalFargateProfiles": list.clone() }))
        .await;
    samples.create_vpc_secret().await;

    // What a user watching the control plane sees, and when each Workspace reported.
    let start = Instant::now();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let reports: Arc<Mutex<BTreeMap<String, (f64, String)>>> = Arc::default();
    let cp_watch = {
        let seen = seen.clone();
        let stream = watcher(
            samples.cps(),
            watcher::Config::default().fields(&format!("metadata.name={CP}")),
        )
        .applied_objects();
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(Ok(cp)) = stream.next().await {
                let cp: CAPTControlPlane = cp;
                let status = cp.status.clone().unwrap_or_default();
                let mut seen = seen.lock().unwrap();
                if seen.last().is_none_or(|s| s.status != status) && status != Default::default() {
                    seen.push(Seen {
                        at: start.elapsed().as_secs_f64(),
                        generation: cp.metadata.generation,
                        status,
                    });
                }
            }
        })
    };
    let ws_watch = {
        let reports = reports.clone();
        let stream = watcher(
            Api::<Workspace>::all(samples.client.clone()),
            watcher::Config::default().labels(&format!(
                "{}={}",
                names::LABEL_APPLY_NAMESPACE,
                samples.ns.name
            )),
        )
        .applied_objects();
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(Ok(ws)) = stream.next().await {
                let ws: Workspace = ws;
                let conditions = ws
                    .status
                    .as_ref()
                    .map(|s| s.conditions.clone())
                    .unwrap_or_default();
                let state = match (find(&conditions, "Ready"), find(&conditions, "Synced")) {
                    (_, Some(s)) if s.status == "False" => "failed",
                    (Some(r), _) if r.status == "True" => "ready",
                    _ => continue,
                };
                let profile = ws
                    .spec
                    .for_provider
                    .varmap
                    .as_ref()
                    .and_then(|m| m.get("profile_name"))
                    .and_then(|v| v.as_str())
                    .unwrap_or("eks")
                    .to_string();
                reports
                    .lock()
                    .unwrap()
                    .entry(format!("{profile} {state}"))
                    .or_insert((start.elapsed().as_secs_f64(), state.into()));
            }
        })
    };

    let operator = Operator::start(samples.client.clone(), &samples.ns.name);
    samples.all_ready_within(2 + list.len(), WAIT).await;

    // A removal: the profile shows as Deleting at once and until it is gone.
    list.retain(|p| p["name"] != "p6");
    let removed_at = start.elapsed().as_secs_f64();
    samples
        .patch_spec(json!({ "additionalFargateProfiles": list.clone() }))
        .await;
    samples.all_ready_within(2 + list.len(), WAIT).await;

    // A failure: a new profile that AWS refuses.
    samples.provider.inject_failure(
        "quota",
        "ResourceLimitExceededException: Fargate profile limit reached",
    );
    list.push(profile("quota", "quota"));
    samples
        .patch_spec(json!({ "additionalFargateProfiles": list }))
        .await;
    eventually("the quota profile Failed", WAIT, || async {
        let failed = seen.lock().unwrap().last().is_some_and(|s| {
            s.status
                .fargate_profiles
                .iter()
                .any(|p| p.name == "quota" && p.phase == Some(FargateProfilePhase::Failed))
        });
        if failed {
            Ok(())
        } else {
            Err("not yet".to_string())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    cp_watch.abort();
    ws_watch.abort();
    operator.stop().await;

    let seen = seen.lock().unwrap().clone();
    let reports = reports.lock().unwrap().clone();
    println!("what a user sees (each status write of the control plane):");
    let mut progress = 0;
    for (i, s) in seen.iter().enumerate() {
        let why = if i == 0 {
            Some("first")
        } else {
            urgent(&seen[i - 1], s)
        };
        let gap = if i == 0 { 0.0 } else { s.at - seen[i - 1].at };
        println!("{}   (+{gap:.1}s, {})", s.line(), why.unwrap_or("progress"));
    }
    println!("Workspace reports: {reports:?}");
    for (i, s) in seen.iter().enumerate().skip(1) {
        let gap = s.at - seen[i - 1].at;
        if urgent(&seen[i - 1], s).is_none() {
            progress += 1;
            assert!(
                gap >= PROGRESS_INTERVAL - SLACK,
                "a progress-only status write {gap:.1} s after the previous one: {}",
                s.line()
            );
            assert!(
                gap <= PROGRESS_INTERVAL + AT_ONCE,
                "progress waited {gap:.1} s (it waits one interval, {PROGRESS_INTERVAL} s): {}",
                s.line()
            );
        }
    }
    assert!(
        progress >= 1,
        "the rollout showed no paced progress write; it is too short to test pacing"
    );
    // The last profile becoming ready is written at once, and so is a failure.
    let last = format!("{} ready", extra.last().unwrap());
    let last_ready = reports
        .get(&last)
        .unwrap_or_else(|| panic!("no report {last}"))
        .0;
    let all_ready = seen
        .iter()
        .find(|s| {
            !s.status.fargate_profiles.is_empty()
                && s.status.fargate_profiles.iter().all(|p| p.ready)
        })
        .expect("an all-ready status");
    assert!(
        all_ready.at - last_ready <= AT_ONCE,
        "the last profile was ready at {last_ready:.1} s, the status said so at {:.1} s",
        all_ready.at
    );
    let failed = reports.get("quota failed").expect("quota failure report").0;
    let failed_seen = seen
        .iter()
        .find(|s| {
            s.status
                .fargate_profiles
                .iter()
                .any(|p| p.phase == Some(FargateProfilePhase::Failed))
        })
        .expect("a failed status");
    assert!(
        failed_seen.at - failed <= AT_ONCE,
        "the quota Workspace failed at {failed:.1} s, the status said so at {:.1} s",
        failed_seen.at
    );
    assert!(failed_seen.generation.is_some());

    // The removed profile: Deleting in the first status written after the change, at once,
    // in every status until it is gone, and destroyed.
    let p6 = |s: &Seen| {
        s.status
            .fargate_profiles
            .iter()
            .find(|p| p.name == "p6")
            .and_then(|p| p.phase)
    };
    let after_removal: Vec<&Seen> = seen.iter().filter(|s| s.at > removed_at).collect();
    let first = after_removal
        .first()
        .expect("a status write after the removal");
    assert_eq!(
        p6(first),
        Some(FargateProfilePhase::Deleting),
        "{}",
        first.line()
    );
    assert!(
        first.at - removed_at <= AT_ONCE,
        "removed at {removed_at:.1} s, Deleting shown at {:.1} s",
        first.at
    );
    let gone = after_removal
        .iter()
        .position(|s| p6(s).is_none())
        .expect("p6 leaves the status once deleted");
    assert!(
        after_removal[..gone]
            .iter()
            .all(|s| p6(s) == Some(FargateProfilePhase::Deleting)),
        "p6 is Deleting until it is gone"
    );
    let p6_workspace =
        names::workspace_name(&samples.ns.name, &names::profile_apply_name(CP, "p6"));
    assert!(
        samples
            .provider
            .observations
            .lock()
            .unwrap()
            .destroys
            .contains_key(&p6_workspace),
        "p6 was not destroyed"
    );
    samples.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 3. A tag change is applied in place
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_tag_change_updates_the_profile_in_place() {
    let samples = Samples::start("tags", Duration::from_millis(300)).await;
    let operator = Operator::start(samples.client.clone(), &samples.ns.name);
    samples.create_vpc_secret().await;
    samples.all_ready_within(4, WAIT).await;
    let apply_name = names::profile_apply_name(CP, "batch-jobs");
    let ws_name = names::workspace_name(&samples.ns.name, &apply_name);
    let workspaces: Api<Workspace> = Api::all(samples.client.clone());
    let apply = samples.applies().get(&apply_name).await.unwrap();
    let ws_before = workspaces.get(&ws_name).await.unwrap();
    assert_eq!(
        ws_before.spec.for_provider.varmap.as_ref().unwrap()["tags"],
        json!({ "environment": "demo", "team": "data" })
    );
    let log = AuditLog::open().await;

    let mut list: Vec<Value> = samples
        .cps()
        .get(CP)
        .await
        .unwrap()
        .spec
        .additional_fargate_profiles
        .unwrap()
        .iter()
        .map(|p| serde_json::to_value(p).unwrap())
        .collect();
    list[1]["tags"] = json!({ "team": "platform", "cost-center": "42" });
    samples
        .patch_spec(json!({ "additionalFargateProfiles": list }))
        .await;
    let ws = eventually("the new tags applied", WAIT, || async {
        let ws = workspaces.get(&ws_name).await.map_err(|e| e.to_string())?;
        let tags = ws
            .spec
            .for_provider
            .varmap
            .as_ref()
            .map(|m| m["tags"].clone());
        // Applied as provider-terraform reports it: Ready, and Synced for this generation.
        let ready = capt_fargate::status::apply::workspace_applied(&ws);
        if ready
            && tags
                == Some(json!({ "environment": "demo", "team": "platform", "cost-center": "42" }))
        {
            Ok(ws)
        } else {
            Err(format!("tags {tags:?}, ready {ready}"))
        }
    })
    .await;
    samples.all_ready_within(4, WAIT).await;
    let after = samples.applies().get(&apply_name).await.unwrap();
    assert_eq!(after.uid(), apply.uid(), "the profile's apply was replaced");
    assert_eq!(
        ws.uid(),
        ws_before.uid(),
        "the profile's Workspace was replaced"
    );
    assert_eq!(
        ws.labels().get(names::LABEL_APPLY_UID),
        apply.uid().as_ref(),
        "the Workspace belongs to the same apply"
    );
    assert!(
        ws.metadata.generation > Some(1),
        "the Workspace was updated, not created: generation {:?}",
        ws.metadata.generation
    );
    let deletes: Vec<Write> = log
        .writes()
        .into_iter()
        .filter(|w| w.verb == "delete" && (w.name == apply_name || w.name == ws_name))
        .collect();
    assert!(deletes.is_empty(), "deleted on a tag change: {deletes:?}");
    assert!(
        !samples
            .provider
            .observations
            .lock()
            .unwrap()
            .destroys
            .contains_key(&ws_name),
        "the provider destroyed the profile on a tag change"
    );
    operator.stop().await;
    samples.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 4. A leader frozen past its Lease
// ---------------------------------------------------------------------------------------------

/// A short Lease, so that a takeover takes seconds.
const SHORT_LEASE: u64 = 4;

#[tokio::test]
async fn a_leader_frozen_past_its_lease_exits_and_never_writes_again() {
    let samples = Samples::start("lease-lost", Duration::from_secs(2)).await;
    let ns = samples.ns.name.clone();
    let (user_a, user_b) = (format!("frozen-{ns}"), format!("standby-{ns}"));
    let kubeconfig_a = audit::kubeconfig_for_user(&user_a, None).await;
    let kubeconfig_b = audit::kubeconfig_for_user(&user_b, None).await;
    let log = AuditLog::open().await;
    let mut a = Process::start(&kubeconfig_a, &ns, "frozen", Some(SHORT_LEASE));
    wait_for_holder(&samples.client, &ns, "frozen", WAIT).await;
    let mut b = Process::start(&kubeconfig_b, &ns, "standby", Some(SHORT_LEASE));
    samples.create_vpc_secret().await;

    // Frozen with work in flight: the first profile is being created.
    let first = names::profile_apply_name(CP, "monitoring");
    eventually("the first profile apply", WAIT, || async {
        match samples.applies().get_opt(&first).await {
            Ok(Some(_)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    a.signal("STOP");
    let frozen = Instant::now();
    wait_for_holder(
        &samples.client,
        &ns,
        "standby",
        Duration::from_secs(3 * SHORT_LEASE + 10),
    )
    .await;
    println!(
        "standby took the Lease {:?} after the leader froze",
        frozen.elapsed()
    );
    // The new leader goes on with the rollout while the old one is still frozen: what it
    // writes reaches the old leader's watches the moment that one runs again.
    let second = names::profile_apply_name(CP, "batch-jobs");
    eventually("the new leader's next profile apply", WAIT, || async {
        match samples.applies().get_opt(&second).await {
            Ok(Some(_)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resumed = Timestamp::now();
    a.signal("CONT");
    let exited = a.wait_exit(Duration::from_secs(15)).await;
    println!("the old leader exited with {exited:?}");
    samples.all_ready_within(4, WAIT).await;
    b.assert_running();
    assert_eq!(lease_holder(&samples.client, &ns).await.unwrap(), "standby");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let writes = log.writes();
    let by_a: Vec<&Write> = writes.iter().filter(|w| w.user == user_a).collect();
    let after: Vec<String> = by_a
        .iter()
        .filter(|w| w.received >= resumed)
        .map(|w| format!("{} {} {} ({})", w.verb, w.kind(), w.name, w.code))
        .collect();
    print_counts(
        "writes by the old leader",
        &by_a.iter().map(|w| (*w).clone()).collect::<Vec<_>>(),
    );
    assert!(
        by_a.iter()
            .any(|w| w.resource == "workspacetemplateapplies"),
        "the old leader never worked, so the test proves nothing"
    );
    assert!(
        after.is_empty(),
        "the old leader wrote after it resumed: {after:?}"
    );
    assert!(
        writes
            .iter()
            .any(|w| w.user == user_b && w.resource != "leases"),
        "the new leader did not work"
    );
    let made = creates(&of_samples(
        writes,
        &samples,
        &workspace_names(&samples, &["monitoring", "batch-jobs"]),
    ));
    let twice: Vec<_> = made.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "created more than once: {twice:?}");
    assert!(
        samples.provider.rejections().is_empty(),
        "{:?}",
        samples.provider.rejections()
    );
    drop(b);
    samples.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 5. SIGTERM in the middle of a reconcile
// ---------------------------------------------------------------------------------------------

/// A TCP proxy in front of the API server that can hold what clients send (TLS passes through
/// untouched): a request sent while it holds waits in the proxy, so the reconcile that sent it
/// is still running. Plain threads, one per direction of each connection.
struct Proxy {
    addr: std::net::SocketAddr,
    holding: Arc<AtomicBool>,
    /// Chunks of client bytes that arrived while holding.
    held: Arc<AtomicUsize>,
    stopped: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: std::net::SocketAddr) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (holding, held, stopped): (Arc<AtomicBool>, Arc<AtomicUsize>, Arc<AtomicBool>) =
            Default::default();
        let (h, c, s) = (holding.clone(), held.clone(), stopped.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(SeqCst) {
                    break;
                }
                let (Ok(client), Ok(server)) = (client, std::net::TcpStream::connect(upstream))
                else {
                    continue;
                };
                let (mut from_client, mut to_server) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut from_server, mut to_client) = (server, client);
                let (holding, held) = (h.clone(), c.clone());
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        if !matches!(from_client.peek(&mut buf[..1]), Ok(n) if n > 0) {
                            break;
                        }
                        if holding.load(SeqCst) {
                            held.fetch_add(1, SeqCst);
                            while holding.load(SeqCst) {
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        }
                        let n = match from_client.read(&mut buf) {
                            Ok(n) if n > 0 => n,
                            _ => break,
                        };
                        if to_server.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to_server.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_server, &mut to_client);
                    let _ = to_client.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Proxy {
            addr,
            holding,
            held,
            stopped,
        }
    }

    fn hold(&self, on: bool) {
        self.holding.store(on, SeqCst);
    }

    fn held(&self) -> usize {
        self.held.load(SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Wakes the accept loop so that it sees the flag.
        self.hold(false);
        self.stopped.store(true, SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
    }
}

/// The API server's address, from the admin kubeconfig.
async fn apiserver_addr() -> std::net::SocketAddr {
    let kubeconfig = crate::support::cluster::kubeconfig().await;
    let config = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
    let server = config.clusters[0]
        .cluster
        .as_ref()
        .and_then(|c| c.server.clone())
        .unwrap();
    server.trim_start_matches("https://").parse().unwrap()
}

#[tokio::test]
async fn sigterm_lets_a_running_reconcile_finish_and_exits_cleanly() {
    let samples = Samples::start("sigterm", Duration::from_millis(300)).await;
    let ns = samples.ns.name.clone();
    let (user, user_next) = (format!("terminated-{ns}"), format!("next-{ns}"));
    let proxy = Proxy::start(apiserver_addr().await);
    let kubeconfig =
        audit::kubeconfig_for_user(&user, Some(&format!("https://{}", proxy.addr))).await;
    let log = AuditLog::open().await;
    let mut op = Process::start(&kubeconfig, &ns, "terminated", None);
    samples.create_vpc_secret().await;
    samples.all_ready_within(4, WAIT).await;

    // A reconcile in the middle of its writes: the operator's requests wait in the proxy while
    // a new profile wakes the control plane's reconcile.
    proxy.hold(true);
    let mut list: Vec<Value> = samples
        .cps()
        .get(CP)
        .await
        .unwrap()
        .spec
        .additional_fargate_profiles
        .unwrap()
        .iter()
        .map(|p| serde_json::to_value(p).unwrap())
        .collect();
    list.push(profile("late", "late"));
    samples
        .patch_spec(json!({ "additionalFargateProfiles": list }))
        .await;
    eventually(
        "the operator's request waiting in the proxy",
        WAIT,
        || async {
            if proxy.held() > 0 {
                Ok(())
            } else {
                Err("nothing sent yet".to_string())
            }
        },
    )
    .await;
    // The reconcile that the watch event started has sent its request by now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let terminated = Timestamp::now();
    op.signal("TERM");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        op.exited().is_none(),
        "the operator exited with {:?} while a reconcile was still waiting for the API server",
        op.exited()
    );
    proxy.hold(false);
    let status = op
        .wait_exit(Duration::from_secs(25))
        .await
        .expect("the operator exits within its 20 s grace period");
    println!("exited with {status}");
    assert!(status.success(), "SIGTERM is a clean exit, got {status}");
    let text = op.log_text();
    assert!(
        text.contains("termination requested") && text.contains("stopped"),
        "log:\n{text}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let late = names::profile_apply_name(CP, "late");
    let finished: Vec<Write> = log
        .writes()
        .into_iter()
        .filter(|w| w.user == user && w.received >= terminated && w.succeeded())
        .collect();
    print_counts("the terminated operator's writes after SIGTERM", &finished);
    assert!(
        finished.iter().any(|w| w.verb == "create"
            && w.resource == "workspacetemplateapplies"
            && w.name == late),
        "the reconcile running at SIGTERM did not finish creating {late}"
    );

    // A new operator takes over from there: nothing is made twice.
    let kubeconfig_next = audit::kubeconfig_for_user(&user_next, None).await;
    let mut next = Process::start(&kubeconfig_next, &ns, "next", None);
    samples.all_ready_within(5, WAIT).await;
    next.assert_running();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let made = creates(&of_samples(
        log.writes(),
        &samples,
        &workspace_names(&samples, &["monitoring", "batch-jobs", "late"]),
    ));
    let twice: Vec<_> = made.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "created more than once: {twice:?}");
    assert_eq!(
        made.get(&("workspacetemplateapplies".to_string(), late.clone())),
        Some(&1)
    );
    assert!(
        samples.provider.rejections().is_empty(),
        "{:?}",
        samples.provider.rejections()
    );
    drop(next);
    samples.stop().await;
}

/// provider-terraform reports a new Workspace `Creating` right after its create call and
/// `Available` at the next observation. A provider that gets there within the first-report
/// grace (10 s) costs each apply one status write, not one per step (`workspace_has_news`).
#[tokio::test]
async fn a_quick_provider_costs_each_apply_one_status_write() {
    let samples = Samples::start("one-status", Duration::ZERO).await;
    let ns = samples.ns.name.clone();
    let log = AuditLog::open().await;
    let operator = Operator::start(samples.client.clone(), &ns);
    samples.create_vpc_secret().await;
    samples.all_ready_within(4, WAIT).await;
    // The tail of the convergence.
    tokio::time::sleep(Duration::from_secs(3)).await;
    operator.stop().await;
    let applies = samples.applies().list(&Default::default()).await.unwrap();
    assert!(!applies.items.is_empty());
    let writes: Vec<Write> = log
        .writes()
        .into_iter()
        .filter(|w| {
            w.namespace == ns && w.kind() == "workspacetemplateapplies/status" && w.succeeded()
        })
        .collect();
    let mut per_apply: BTreeMap<String, usize> =
        applies.items.iter().map(|a| (a.name_any(), 0)).collect();
    for w in &writes {
        *per_apply.entry(w.name.clone()).or_default() += 1;
    }
    assert!(
        per_apply.values().all(|n| *n == 1),
        "status writes per apply: {per_apply:?}"
    );
    samples.stop().await;
}
