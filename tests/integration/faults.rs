//! Fault tests on the real control plane: the operator killed at risky moments, the API
//! server restarted under it, two replicas with leader election, and dependencies that go
//! missing or are edited by hand while it runs.
//!
//! The tests of this module serialize on one lock ([`SERIAL`]): they start processes, restart
//! the API server and measure quiet windows, which must not overlap. Restarting the API server
//! (`api_server_restart_is_survived_without_restarting_the_controller`, via
//! `tests/cluster/restart-apiserver`) also disturbs everything else using the test cluster at
//! that moment, including tests of other modules in this process: their requests fail for a
//! few seconds, and controllers' watches may stay down much longer (kube-runtime backs off on
//! the 410 Expired every watch gets from a fresh API server; up to ~75 s was measured). Run
//! this module on its own: `cargo test --test integration faults -- --test-threads=1`, and the
//! rest with `-- --skip faults::`.
//!
//! The kill test kills the operator when a watch shows a risky write (an apply or Workspace
//! created, an apply deleted, a status written); how long it stays down comes from a seeded
//! generator, whose seed is printed and `FAULTS_SEED=<seed>` replays it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use capt_fargate::api::conditions::{SYNCED, find};
use capt_fargate::api::{CAPTControlPlane, FargateProfilePhase, Workspace, WorkspaceTemplate};
use capt_fargate::names;

use crate::support::samples::{CP, Samples, profile};
use crate::support::{self, Operator, eventually};

/// Generous bound for anything to converge (the machine is small and shared).
const WAIT: Duration = Duration::from_secs(90);
/// Reconciles allowed per controller in a quiet window before it counts as a hot loop.
const QUIET_MAX_RECONCILES: u64 = 10;
const QUIET_WINDOW: Duration = Duration::from_secs(5);
const LEASE: &str = "capt-fargate-leader";
const LEASE_SECONDS: u64 = 4;

/// Serializes the tests of this module (see the module docs).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------------

/// The samples in a fresh namespace with the simulated provider running; the operator is
/// started by each test as it needs (in-process or as child processes).
/// The samples (no operator: each test runs its own).
struct Env(Samples);

impl std::ops::Deref for Env {
    type Target = Samples;
    fn deref(&self) -> &Samples {
        &self.0
    }
}

impl Env {
    async fn start(prefix: &str) -> Env {
        Self::start_with_delay(prefix, Duration::from_millis(300)).await
    }

    /// Same, with each Fargate profile create or destroy taking `delay` at the provider.
    async fn start_with_delay(prefix: &str, delay: Duration) -> Env {
        let samples = Samples::start(prefix, delay).await;
        println!("namespace {}", samples.ns.name);
        Env(samples)
    }

    async fn stop(self) {
        self.0.stop().await;
    }

    /// Waits until the status lists `total` profiles, all Ready, for the current generation.
    async fn all_ready(&self, total: usize) -> CAPTControlPlane {
        self.all_ready_within(total, WAIT).await
    }

    /// The additional profiles of the spec as JSON.
    async fn spec_profiles(&self) -> Vec<Value> {
        let cp = self.cps().get(CP).await.unwrap();
        cp.spec
            .additional_fargate_profiles
            .unwrap_or_default()
            .iter()
            .map(|p| serde_json::to_value(p).unwrap())
            .collect()
    }

    async fn set_profiles(&self, list: Vec<Value>) {
        let patch = json!({ "spec": { "additionalFargateProfiles": list } });
        self.cps()
            .patch(CP, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    async fn add_profile(&self, name: &str) {
        let mut list = self.spec_profiles().await;
        list.push(profile(name, name));
        self.set_profiles(list).await;
    }

    /// The status entry of one profile.
    async fn profile_status(&self, name: &str) -> Option<capt_fargate::api::FargateProfileStatus> {
        let cp = self.cps().get(CP).await.ok()?;
        cp.status?
            .fargate_profiles
            .into_iter()
            .find(|p| p.name == name)
    }

    /// Exactly one apply per expected profile (and no other), and exactly one Workspace per
    /// apply (the EKS cluster's included), owned by that apply's uid.
    async fn assert_no_duplicates(&self, profiles: &[&str]) {
        let applies = self.profile_applies().await;
        let mut names_seen: Vec<String> = applies.iter().map(|a| a.name_any()).collect();
        names_seen.sort();
        let mut expected: Vec<String> = profiles
            .iter()
            .map(|p| names::profile_apply_name(CP, p))
            .collect();
        expected.sort();
        assert_eq!(names_seen, expected, "profile applies");
        for a in &applies {
            let profile = a
                .annotations()
                .get(names::ANNOTATION_PROFILE_NAME)
                .cloned()
                .unwrap_or_default();
            let same: Vec<_> = applies
                .iter()
                .filter(|b| b.annotations().get(names::ANNOTATION_PROFILE_NAME) == Some(&profile))
                .collect();
            assert_eq!(same.len(), 1, "more than one apply for profile {profile}");
        }
        let eks = self
            .applies()
            .get(&names::eks_apply_name(CP))
            .await
            .expect("EKS apply");
        let workspaces = self.workspaces().await;
        assert_eq!(
            workspaces.len(),
            profiles.len() + 1,
            "Workspaces: {:?}",
            workspaces.iter().map(|w| w.name_any()).collect::<Vec<_>>()
        );
        for apply in applies.iter().chain([&eks]) {
            let key = format!("{}/{}", self.ns.name, apply.name_any());
            let mine: Vec<&Workspace> = workspaces
                .iter()
                .filter(|w| w.annotations().get(names::ANNOTATION_APPLY) == Some(&key))
                .collect();
            assert_eq!(
                mine.len(),
                1,
                "Workspaces of {key}: {:?}",
                mine.iter().map(|w| w.name_any()).collect::<Vec<_>>()
            );
            assert_eq!(
                mine[0].labels().get(names::LABEL_APPLY_UID),
                apply.uid().as_ref(),
                "Workspace {} owner uid",
                mine[0].name_any()
            );
        }
    }

    /// Waits until the CAPTControlPlane is gone, then checks that nothing it made is left.
    async fn assert_deleted_completely(&self) {
        eventually("control plane gone", WAIT, || async {
            match self.cps().get_opt(CP).await.map_err(|e| e.to_string())? {
                None => Ok(()),
                Some(cp) => Err(format!(
                    "finalizers {:?}, status {:?}",
                    cp.finalizers(),
                    cp.status.as_ref().map(|s| &s.fargate_profiles)
                )),
            }
        })
        .await;
        let left = self
            .applies()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        assert!(
            left.is_empty(),
            "WorkspaceTemplateApplies left: {:?}",
            left.iter().map(|a| a.name_any()).collect::<Vec<_>>()
        );
        let left = self.workspaces().await;
        assert!(
            left.is_empty(),
            "Workspaces left: {:?}",
            left.iter().map(|w| w.name_any()).collect::<Vec<_>>()
        );
    }

    /// AWS never saw two Fargate profile operations at once on the cluster (additional or
    /// default profiles, creates or deletes), nor a refusal.
    fn assert_no_concurrent_operations(&self) {
        let overlaps = self.provider.overlaps();
        assert!(
            overlaps.is_empty(),
            "overlapping Fargate profile operations:\n{}",
            overlaps.join("\n")
        );
    }

    fn workspace_of(&self, apply: &str) -> String {
        names::workspace_name(&self.ns.name, apply)
    }
}

fn condition_of<'a>(
    cp: &'a CAPTControlPlane,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    cp.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

// ---------------------------------------------------------------------------------------------
// Randomness
// ---------------------------------------------------------------------------------------------

/// xorshift64*: reproducible from its seed, good enough to pick kill points.
struct Rng(u64);

impl Rng {
    fn from_env_or_clock() -> Rng {
        let seed = std::env::var("FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        println!("fault seed {seed} (replay with FAULTS_SEED={seed})");
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi` milliseconds.
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo + 1))
    }
}

// ---------------------------------------------------------------------------------------------
// The operator as a child process
// ---------------------------------------------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One replica of the operator: the real binary, namespace-scoped, restartable. Killed (SIGKILL)
/// when dropped, so a failing test leaves no process behind.
struct Replica {
    identity: String,
    kubeconfig: PathBuf,
    namespace: String,
    leader_election: bool,
    child: Option<Child>,
    metrics_port: u16,
    log: PathBuf,
    starts: u32,
    /// When the running process was started.
    spawned_at: Instant,
}

impl Replica {
    fn start(kubeconfig: &Path, namespace: &str, identity: &str, leader_election: bool) -> Replica {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("faults");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("{namespace}-{identity}.log"));
        let mut r = Replica {
            identity: identity.into(),
            kubeconfig: kubeconfig.into(),
            namespace: namespace.into(),
            leader_election,
            child: None,
            metrics_port: 0,
            log,
            starts: 0,
            spawned_at: Instant::now(),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.identity);
        self.metrics_port = free_port();
        let health_port = free_port();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_capt-fargate"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--namespace", &self.namespace])
            .arg(format!("--leader-election={}", self.leader_election))
            .args(["--lease-namespace", &self.namespace, "--lease-name", LEASE])
            .args(["--lease-duration-seconds", &LEASE_SECONDS.to_string()])
            .args(["--identity", &self.identity])
            .args([
                "--metrics-addr",
                &format!("127.0.0.1:{}", self.metrics_port),
            ])
            .args(["--health-addr", &format!("127.0.0.1:{health_port}")])
            .args(["--log-format", "text", "--log-level", "info"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("starting the capt-fargate binary");
        self.starts += 1;
        self.spawned_at = Instant::now();
        self.mark(&format!(
            "started pid {} (start #{})",
            child.id(),
            self.starts
        ));
        println!(
            "started {} (pid {}, start #{}), log {}",
            self.identity,
            child.id(),
            self.starts,
            self.log.display()
        );
        self.child = Some(child);
    }

    /// SIGKILL, and reap it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id();
            let _ = child.kill();
            let _ = child.wait();
            self.mark(&format!("killed pid {pid} (SIGKILL)"));
            println!("killed {} (pid {pid})", self.identity);
        }
    }

    /// A line in its log, to line up the test's actions with what the process logged.
    fn mark(&self, what: &str) {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
        {
            let now = k8s_openapi::jiff::Timestamp::now();
            let _ = writeln!(f, "==== {now} faults test: {} {what} ====", self.identity);
        }
    }

    /// Panics (with its log) if the process exited on its own.
    fn assert_running(&mut self) {
        let child = self
            .child
            .as_mut()
            .unwrap_or_else(|| panic!("{} is not started", self.identity));
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            panic!(
                "{} exited on its own with {status}; log tail:\n{}",
                self.identity,
                tail.join("\n")
            );
        }
    }

    /// `capt_fargate_reconciles_total` summed over controllers, None when the metric has no
    /// sample yet (nothing reconciled).
    async fn reconciles(&self) -> Result<Option<u64>, String> {
        let body = http_get(self.metrics_port, "/metrics").await?;
        let mut found = None;
        for line in body
            .lines()
            .filter(|l| l.starts_with("capt_fargate_reconciles_total"))
        {
            let value: f64 = line
                .rsplit(' ')
                .next()
                .unwrap_or("")
                .parse()
                .map_err(|e| format!("{line}: {e}"))?;
            *found.get_or_insert(0) += value as u64;
        }
        Ok(found)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain HTTP/1.1 GET on 127.0.0.1 (no client library needed for /metrics).
async fn http_get(port: u16, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let path = path.to_string();
    let fetch = move || -> Result<String, String> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&response).to_string();
        let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP header")?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(head.lines().next().unwrap_or("").to_string());
        }
        Ok(body.to_string())
    };
    tokio::task::spawn_blocking(fetch)
        .await
        .map_err(|e| e.to_string())?
}

/// A risky moment for a kill, seen on a watch: the operator just wrote something that a
/// restarted process must pick up where it was left.
#[derive(Clone, Debug, PartialEq)]
enum Moment {
    /// A WorkspaceTemplateApply appeared.
    ApplyCreated(String),
    /// A WorkspaceTemplateApply got its deletion timestamp.
    ApplyDeleting(String),
    /// A Workspace appeared.
    WorkspaceCreated(String),
    /// The control plane's status changed.
    StatusWritten,
}

/// The moments of one namespace as its watches deliver them, each with when it arrived.
struct Moments {
    events: tokio::sync::mpsc::UnboundedReceiver<(Instant, Moment)>,
    watches: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Moments {
    fn drop(&mut self) {
        for w in &self.watches {
            w.abort();
        }
    }
}

/// Forwards the moments of `api`'s objects that `moments` finds (given the object and whether
/// its uid is new) to `tx`.
fn forward<K>(
    api: Api<K>,
    config: kube::runtime::watcher::Config,
    tx: tokio::sync::mpsc::UnboundedSender<(Instant, Moment)>,
    mut moments: impl FnMut(&K, bool) -> Vec<Moment> + Send + 'static,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    tokio::spawn(async move {
        let mut seen = std::collections::HashSet::new();
        let mut stream = std::pin::pin!(watcher(api, config).default_backoff());
        while let Some(event) = stream.next().await {
            let Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) = event else {
                continue;
            };
            let new = seen.insert(obj.meta().uid.clone().unwrap_or_default());
            for m in moments(&obj, new) {
                let _ = tx.send((Instant::now(), m));
            }
        }
    })
}

impl Moments {
    /// Starts watching the control plane, the applies and the Workspaces of `env`.
    fn watch(env: &Env) -> Moments {
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let mut deleting = std::collections::HashSet::new();
        let applies = forward(
            env.applies(),
            Default::default(),
            tx.clone(),
            move |a, new| {
                let mut found = Vec::new();
                if new {
                    found.push(Moment::ApplyCreated(a.name_any()));
                }
                if a.metadata.deletion_timestamp.is_some() && deleting.insert(a.uid()) {
                    found.push(Moment::ApplyDeleting(a.name_any()));
                }
                found
            },
        );
        let selector = format!("{}={}", names::LABEL_APPLY_NAMESPACE, env.ns.name);
        let workspaces = forward(
            Api::<Workspace>::all(env.client.clone()),
            kube::runtime::watcher::Config::default().labels(&selector),
            tx.clone(),
            |w, new| {
                if new {
                    vec![Moment::WorkspaceCreated(w.name_any())]
                } else {
                    vec![]
                }
            },
        );
        let mut last_status = None;
        let control_planes = forward(env.cps(), Default::default(), tx, move |cp, _| {
            let status = serde_json::to_value(&cp.status).unwrap();
            let changed = last_status.as_ref().is_some_and(|last| *last != status);
            last_status = Some(status);
            if changed {
                vec![Moment::StatusWritten]
            } else {
                vec![]
            }
        });
        Moments {
            events,
            watches: vec![applies, workspaces, control_planes],
        }
    }

    /// The first moment satisfying `want` that arrived after `since`.
    async fn next(&mut self, what: &str, since: Instant, want: impl Fn(&Moment) -> bool) -> Moment {
        let wait = async {
            loop {
                let (at, moment) = self.events.recv().await.expect("the watches stopped");
                if at >= since && want(&moment) {
                    return moment;
                }
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
    }
}

/// What a kill hit.
struct Kill {
    moment: Moment,
    /// The unfinished work the killed process left behind, if any.
    in_flight: Option<String>,
}

/// What is unfinished: applies not Ready or being deleted, Workspaces being created or
/// deleted, and a control plane whose status is behind (or which is being deleted).
async fn work_in_flight(env: &Env) -> Option<String> {
    use capt_fargate::status::apply::{ChildState, child_state};
    let mut busy = Vec::new();
    let applies = env
        .applies()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    for a in &applies {
        match child_state(a) {
            ChildState::Ready => {}
            ChildState::Deleting(_) => busy.push(format!("apply {} deleting", a.name_any())),
            ChildState::Creating { .. } => busy.push(format!("apply {} creating", a.name_any())),
            ChildState::Failed { reason, .. } => {
                busy.push(format!("apply {} failed ({reason})", a.name_any()))
            }
        }
    }
    for w in env.workspaces().await {
        let ready = w
            .status
            .as_ref()
            .and_then(|s| find(&s.conditions, "Ready"))
            .is_some_and(|c| c.is_true());
        if w.metadata.deletion_timestamp.is_some() {
            busy.push(format!("Workspace {} deleting", w.name_any()));
        } else if !ready {
            busy.push(format!("Workspace {} creating", w.name_any()));
        }
    }
    if let Some(cp) = env.cps().get_opt(CP).await.unwrap() {
        let status = cp.status.clone().unwrap_or_default();
        if cp.metadata.deletion_timestamp.is_some() {
            busy.push("control plane being deleted".into());
        } else if cp.metadata.generation != status.observed_generation
            || status.fargate_profiles.iter().any(|p| !p.ready)
        {
            busy.push("control plane status not converged".into());
        }
    }
    (!busy.is_empty()).then(|| busy.join(", "))
}

/// Waits for the first moment satisfying `want` since the replica started, kills it at once
/// (SIGKILL), records what was in flight, keeps it down for a random moment and starts it again.
async fn kill_at(
    env: &Env,
    replica: &mut Replica,
    moments: &mut Moments,
    rng: &mut Rng,
    kills: &mut Vec<Kill>,
    what: &str,
    want: impl Fn(&Moment) -> bool,
) {
    let moment = moments.next(what, replica.spawned_at, want).await;
    replica.assert_running();
    replica.kill();
    let in_flight = work_in_flight(env).await;
    let down = rng.millis(0, 600);
    println!(
        "kill #{} at {moment:?} ({what}); in flight: {}; down for {down:?}",
        kills.len() + 1,
        in_flight.as_deref().unwrap_or("nothing")
    );
    kills.push(Kill { moment, in_flight });
    tokio::time::sleep(down).await;
    replica.spawn();
}

// ---------------------------------------------------------------------------------------------
// Quiet windows
// ---------------------------------------------------------------------------------------------

/// After convergence, nothing may keep reconciling or writing: over [`QUIET_WINDOW`] each
/// controller reconciles at most [`QUIET_MAX_RECONCILES`] times, and neither the control plane
/// nor any apply changes (no status flapping).
async fn assert_quiet(env: &Env, operator: &Operator, what: &str) {
    // Let the tail of the convergence (the reconcile that follows the last status write) pass.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let snapshot = || async {
        let cp = env.cps().get(CP).await.unwrap();
        let applies: BTreeMap<String, String> = env
            .applies()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|a| (a.name_any(), a.resource_version().unwrap_or_default()))
            .collect();
        (cp, applies)
    };
    let counts = || {
        (
            operator.metrics.reconcile_count("controlplane"),
            operator.metrics.reconcile_count("workspacetemplateapply"),
        )
    };
    let (cp0, applies0) = snapshot().await;
    let c0 = counts();
    tokio::time::sleep(QUIET_WINDOW).await;
    let (cp1, applies1) = snapshot().await;
    let c1 = counts();
    let (dcp, dwta) = (c1.0 - c0.0, c1.1 - c0.1);
    println!(
        "quiet window ({what}): {dcp} controlplane and {dwta} workspacetemplateapply reconciles in {QUIET_WINDOW:?}"
    );
    assert!(
        dcp <= QUIET_MAX_RECONCILES && dwta <= QUIET_MAX_RECONCILES,
        "hot loop while {what}: {dcp} controlplane / {dwta} workspacetemplateapply reconciles in a quiet {QUIET_WINDOW:?}"
    );
    assert_eq!(
        cp0.resource_version(),
        cp1.resource_version(),
        "the CAPTControlPlane kept changing while {what}:\nbefore {:?}\nafter  {:?}",
        cp0.status,
        cp1.status
    );
    assert_eq!(
        applies0, applies1,
        "WorkspaceTemplateApplies kept changing while {what}"
    );
}

// ---------------------------------------------------------------------------------------------
// 1. Killed at risky moments
// ---------------------------------------------------------------------------------------------

/// The operator is SIGKILLed right after the writes a restart must pick up where they were
/// left (a Workspace created, an apply created, a status written, an apply deleted), through
/// creation, a new profile, a replacement and deletion. Most kills must find work in flight,
/// and the outcome must be as if nothing had happened: no duplicate applies or Workspaces,
/// no overlapping Fargate operations, every Workspace applied and destroyed once, nothing
/// left behind.
#[tokio::test]
async fn controller_killed_at_risky_moments_converges_without_duplicates() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let mut rng = Rng::from_env_or_clock();
    // Profile operations take long enough that a restarted process finds them in progress.
    let env = Env::start_with_delay("faults-kill", Duration::from_millis(600)).await;
    let mut moments = Moments::watch(&env);
    let kubeconfig = support::cluster::kubeconfig().await;
    let mut op = Replica::start(&kubeconfig, &env.ns.name, "killed", false);
    let mut kills = Vec::new();
    let monitoring = names::profile_apply_name(CP, "monitoring");
    let analytics = names::profile_apply_name(CP, "analytics");
    let eks = names::eks_apply_name(CP);
    let is_profile = |name: &str| name.starts_with("demo-cluster-fargate-");

    // Creation of the cluster and the two sample profiles.
    env.create_vpc_secret().await;
    kill_at(
        &env,
        &mut op,
        &mut moments,
        &mut rng,
        &mut kills,
        "the cluster's Workspace created",
        |m| matches!(m, Moment::WorkspaceCreated(_)),
    )
    .await;
    kill_at(
        &env,
        &mut op,
        &mut moments,
        &mut rng,
        &mut kills,
        "the first profile apply created",
        |m| *m == Moment::ApplyCreated(monitoring.clone()),
    )
    .await;
    kill_at(
        &env,
        &mut op,
        &mut moments,
        &mut rng,
        &mut kills,
        "a status write",
        |m| *m == Moment::StatusWritten,
    )
    .await;
    env.all_ready(4).await;
    op.assert_running();
    env.assert_no_duplicates(&["monitoring", "batch-jobs"])
        .await;

    // A profile is added.
    env.add_profile("analytics").await;
    kill_at(
        &env,
        &mut op,
        &mut moments,
        &mut rng,
        &mut kills,
        "the new profile's apply created",
        |m| *m == Moment::ApplyCreated(analytics.clone()),
    )
    .await;
    kill_at(
        &env,
        &mut op,
        &mut moments,
        &mut rng,
        &mut kills,
        "a status write",
        |m| *m == Moment::StatusWritten,
    )
    .await;
    env.all_ready(5).await;
    op.assert_running();
    env.assert_no_duplicates(&["monitoring", "batch-jobs", "analytics"])
        .await;

    // A profile's selectors change: it is deleted and created again.
    let old = env.applies().get(&monitoring).await.unwrap();
    let mut list = env.spec_profiles().await;
    list[0]["selectors"][0]["namespace"] = json!("metrics");
    env.set_profiles(list).await;
    kill_at(
        &env,
        &mut op,
        &mut moments,
        &mut rng,
        &mut kills,
        "the replaced apply deleted",
        |m| *m == Moment::ApplyDeleting(monitoring.clone()),
    )
    .await;
    kill_at(
        &env,
        &mut op,
        &mut moments,
        &mut rng,
        &mut kills,
        "the replacement apply created",
        |m| *m == Moment::ApplyCreated(monitoring.clone()),
    )
    .await;
    let new = env.all_ready(5).await;
    assert_ne!(
        env.applies().get(&monitoring).await.unwrap().uid(),
        old.uid(),
        "monitoring was not replaced: {:?}",
        new.status
    );
    op.assert_running();
    env.assert_no_duplicates(&["monitoring", "batch-jobs", "analytics"])
        .await;
    let ws = env.workspaces().await;
    let ws = ws
        .iter()
        .find(|w| w.name_any() == env.workspace_of(&monitoring))
        .expect("monitoring Workspace");
    assert_eq!(
        ws.spec.for_provider.varmap.as_ref().unwrap()["selectors"][0]["namespace"],
        json!("metrics")
    );

    // The control plane is deleted.
    env.cps().delete(CP, &Default::default()).await.unwrap();
    kill_at(
        &env,
        &mut op,
        &mut moments,
        &mut rng,
        &mut kills,
        "the first profile apply deleted",
        |m| matches!(m, Moment::ApplyDeleting(name) if is_profile(name)),
    )
    .await;
    kill_at(
        &env,
        &mut op,
        &mut moments,
        &mut rng,
        &mut kills,
        "the cluster's apply deleted",
        |m| *m == Moment::ApplyDeleting(eks.clone()),
    )
    .await;
    env.assert_deleted_completely().await;
    op.assert_running();

    // The kills aimed at work: most of them left unfinished work to a restarted process.
    let hits = kills.iter().filter(|k| k.in_flight.is_some()).count();
    let idle: Vec<&Moment> = kills
        .iter()
        .filter(|k| k.in_flight.is_none())
        .map(|k| &k.moment)
        .collect();
    assert!(
        hits * 3 >= kills.len() * 2,
        "only {hits} of {} kills found work in flight; idle at {idle:?}",
        kills.len()
    );
    env.assert_no_concurrent_operations();
    // Every Workspace was applied once per incarnation: monitoring twice (it was replaced),
    // everything else once; and destroyed as often. More would mean a Workspace was written
    // twice with different specs, or re-created after its destroy.
    {
        let obs = env.provider.observations.lock().unwrap();
        let expected: BTreeMap<String, u32> = [
            (names::eks_apply_name(CP), 1),
            (monitoring.clone(), 2),
            (names::profile_apply_name(CP, "batch-jobs"), 1),
            (analytics.clone(), 1),
        ]
        .into_iter()
        .map(|(apply, n)| (env.workspace_of(&apply), n))
        .collect();
        assert_eq!(obs.applies, expected, "applies per Workspace");
        assert_eq!(obs.destroys, expected, "destroys per Workspace");
        assert!(
            obs.destroy_order
                .last()
                .unwrap()
                .starts_with("demo-cluster-eks-controlplane"),
            "cluster destroyed last: {:?}",
            obs.destroy_order
        );
    }
    println!(
        "{} kills ({hits} with work in flight), {} starts, {:?} in all",
        kills.len(),
        op.starts,
        started.elapsed()
    );
    drop(moments);
    drop(op);
    env.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 2. API server restart
// ---------------------------------------------------------------------------------------------

async fn restart_apiserver() {
    let script = support::repo_root().join("tests/cluster/restart-apiserver");
    let out = tokio::task::spawn_blocking(move || Command::new(&script).output())
        .await
        .unwrap()
        .expect("running tests/cluster/restart-apiserver");
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stderr}");
    assert!(
        out.status.success(),
        "restart-apiserver failed with {}:\n{stderr}",
        out.status
    );
}

#[tokio::test]
async fn api_server_restart_is_survived_without_restarting_the_controller() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let env = Env::start("faults-apiserver").await;
    // The operator's and kube-runtime's logs of this test (the runtime is single-threaded, so
    // a thread-local subscriber sees every task of the test and nothing of other tests).
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("faults")
        .join(format!("{}-operator.log", env.ns.name));
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "info,kube_runtime=debug,kube_client=debug",
        ))
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(std::fs::File::create(&log).unwrap()))
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    println!("operator log {}", log.display());
    let operator = Operator::start(env.client.clone(), &env.ns.name);
    env.create_vpc_secret().await;
    env.all_ready(4).await;
    let before = operator.metrics.reconcile_count("controlplane");

    restart_apiserver().await;
    let restarted = Instant::now();

    // The same operator (its watches broke and came back) picks up a change made afterwards.
    env.add_profile("after-restart").await;
    env.all_ready_within(5, Duration::from_secs(180)).await;
    println!(
        "converged {:?} after the API server was ready again",
        restarted.elapsed()
    );
    assert!(operator.metrics.reconcile_count("controlplane") > before);
    env.assert_no_duplicates(&["monitoring", "batch-jobs", "after-restart"])
        .await;
    env.assert_no_concurrent_operations();
    assert_quiet(&env, &operator, "converged after the API server restart").await;

    env.cps().delete(CP, &Default::default()).await.unwrap();
    env.assert_deleted_completely().await;
    println!("{:?} in all", started.elapsed());
    operator.stop().await;
    env.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 3. Two replicas
// ---------------------------------------------------------------------------------------------

async fn lease_holder(client: &Client, ns: &str) -> Result<String, String> {
    let lease = Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt(LEASE)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no Lease yet")?;
    lease
        .spec
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| "Lease has no holder".to_string())
}

#[tokio::test]
async fn two_replicas_only_the_leader_writes_and_the_other_takes_over() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let env = Env::start("faults-leader").await;
    let kubeconfig = support::cluster::kubeconfig().await;
    let mut replicas = [
        Replica::start(&kubeconfig, &env.ns.name, "replica-a", true),
        Replica::start(&kubeconfig, &env.ns.name, "replica-b", true),
    ];

    let holder = eventually("a lease holder", WAIT, || {
        lease_holder(&env.client, &env.ns.name)
    })
    .await;
    let leader = replicas
        .iter()
        .position(|r| r.identity == holder)
        .unwrap_or_else(|| panic!("unknown holder {holder}"));
    let follower = 1 - leader;
    println!("{holder} leads");

    env.create_vpc_secret().await;
    env.all_ready(4).await;
    env.add_profile("while-a-leads").await;
    env.all_ready(5).await;
    for r in replicas.iter_mut() {
        r.assert_running();
    }
    assert_eq!(
        lease_holder(&env.client, &env.ns.name).await.unwrap(),
        holder,
        "leadership changed without a failure"
    );
    let leader_count = replicas[leader].reconciles().await.unwrap();
    let follower_count = replicas[follower].reconciles().await.unwrap();
    println!("reconciles: leader {leader_count:?}, follower {follower_count:?}");
    assert!(
        leader_count.unwrap_or(0) > 0,
        "the leader did not reconcile"
    );
    assert_eq!(
        follower_count.unwrap_or(0),
        0,
        "the follower reconciled while the other replica led"
    );

    // The leader dies; the follower takes the lease once it expires.
    replicas[leader].kill();
    let killed = Instant::now();
    let new_holder = eventually(
        "the follower to take the lease",
        Duration::from_secs(30),
        || async {
            match lease_holder(&env.client, &env.ns.name).await {
                Ok(h) if h == replicas[follower].identity => Ok(h),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let takeover = killed.elapsed();
    println!("{new_holder} took the lease {takeover:?} after {holder} was killed");
    assert!(
        takeover <= Duration::from_secs(2 * LEASE_SECONDS + 2),
        "takeover took {takeover:?}, more than twice the lease duration ({LEASE_SECONDS}s) plus slack"
    );

    env.add_profile("after-takeover").await;
    env.all_ready(6).await;
    replicas[follower].assert_running();
    let new_count = replicas[follower].reconciles().await.unwrap();
    assert!(
        new_count.unwrap_or(0) > 0,
        "the new leader did not reconcile"
    );
    assert_eq!(
        lease_holder(&env.client, &env.ns.name).await.unwrap(),
        replicas[follower].identity
    );
    env.assert_no_duplicates(&[
        "monitoring",
        "batch-jobs",
        "while-a-leads",
        "after-takeover",
    ])
    .await;
    env.assert_no_concurrent_operations();

    env.cps().delete(CP, &Default::default()).await.unwrap();
    env.assert_deleted_completely().await;
    println!("{:?} in all", started.elapsed());
    drop(replicas);
    env.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 4. Bad dependencies
// ---------------------------------------------------------------------------------------------

/// Waits until the status entry of `name` satisfies `check`.
async fn wait_profile(
    env: &Env,
    name: &str,
    what: &str,
    check: impl Fn(&capt_fargate::api::FargateProfileStatus) -> bool,
) -> capt_fargate::api::FargateProfileStatus {
    eventually(what, WAIT, || async {
        match env.profile_status(name).await {
            Some(p) if check(&p) => Ok(p),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// Updates the control plane's labels `count` times with optimistic concurrency (get, change,
/// replace; a 409 is retried), as another controller or a user would, pausing `pause` between
/// updates. Returns the number of conflicts seen; stops early when the object is gone.
async fn hammer_labels(
    api: Api<CAPTControlPlane>,
    prefix: &'static str,
    count: u32,
    pause: Duration,
) -> u32 {
    let mut conflicts = 0;
    let mut done = 0;
    while done < count {
        let Ok(Some(mut cp)) = api.get_opt(CP).await else {
            break;
        };
        cp.labels_mut()
            .insert(format!("faults.capt-fargate.io/{prefix}"), done.to_string());
        match api.replace(CP, &PostParams::default(), &cp).await {
            Ok(_) => {
                done += 1;
                tokio::time::sleep(pause).await;
            }
            Err(kube::Error::Api(s)) if s.is_conflict() => conflicts += 1,
            Err(kube::Error::Api(s)) if s.is_not_found() => break,
            Err(e) => panic!("updating labels: {e}"),
        }
    }
    conflicts
}

/// The samples converged with the operator running in-process.
async fn converged(prefix: &str) -> (Env, Operator) {
    let env = Env::start(prefix).await;
    let operator = Operator::start(env.client.clone(), &env.ns.name);
    env.create_vpc_secret().await;
    env.all_ready(4).await;
    assert_quiet(&env, &operator, "converged").await;
    (env, operator)
}

async fn delete_and_stop(env: Env, operator: Operator, started: Instant) {
    env.cps().delete(CP, &Default::default()).await.unwrap();
    env.assert_deleted_completely().await;
    env.assert_no_concurrent_operations();
    let errors: Vec<String> = operator
        .metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("capt_fargate_reconcile_errors_total"))
        .map(str::to_string)
        .collect();
    println!(
        "reconcile errors: {errors:?}; {:?} in all",
        started.elapsed()
    );
    operator.stop().await;
    env.stop().await;
}

/// (a) The EKS connection secret is deleted, or rotated without `cluster_endpoint`: a new
/// profile waits, naming the secret and key; restoring it lets the profile be created.
#[tokio::test]
async fn bad_dependencies_end_in_a_clear_condition_without_hot_loops() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let (env, operator) = converged("faults-secret").await;
    let eks_secret = names::eks_connection_secret(CP);

    // Deleted. The profiles' Workspaces read it, so the secret guard keeps it (Terminating)
    // until they are gone; a person removing that finalizer by hand makes it really missing.
    let saved = env.secrets().get(&eks_secret).await.unwrap();
    env.secrets()
        .delete(&eks_secret, &Default::default())
        .await
        .unwrap();
    env.secrets()
        .patch(
            &eks_secret,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
        )
        .await
        .unwrap();
    env.add_profile("no-secret").await;
    let p = wait_profile(
        &env,
        "no-secret",
        "no-secret waiting for the cluster",
        |p| p.failure_reason.as_deref() == Some("WaitingForCluster"),
    )
    .await;
    assert_eq!(p.phase, Some(FargateProfilePhase::Pending));
    let message = p.failure_message.clone().unwrap_or_default();
    assert!(
        message.contains(&eks_secret) && message.contains("does not exist"),
        "{message}"
    );
    assert!(
        env.applies()
            .get_opt(&names::profile_apply_name(CP, "no-secret"))
            .await
            .unwrap()
            .is_none(),
        "created without the secret"
    );
    assert_quiet(&env, &operator, "waiting for a deleted secret").await;
    let restored = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(eks_secret.clone()),
            ..Default::default()
        },
        type_: saved.type_.clone(),
        data: saved.data.clone(),
        ..Default::default()
    };
    env.secrets()
        .create(&PostParams::default(), &restored)
        .await
        .unwrap();
    env.all_ready(5).await;
    assert_quiet(&env, &operator, "converged after the secret came back").await;

    // Rotated without cluster_endpoint.
    let mut secret = env.secrets().get(&eks_secret).await.unwrap();
    let endpoint = secret
        .data
        .as_mut()
        .unwrap()
        .remove("cluster_endpoint")
        .expect("cluster_endpoint key");
    env.secrets()
        .replace(&eks_secret, &PostParams::default(), &secret)
        .await
        .unwrap();
    env.add_profile("no-endpoint").await;
    let p = wait_profile(
        &env,
        "no-endpoint",
        "no-endpoint waiting for the cluster",
        |p| p.failure_reason.as_deref() == Some("WaitingForCluster"),
    )
    .await;
    assert_eq!(p.phase, Some(FargateProfilePhase::Pending));
    let message = p.failure_message.clone().unwrap_or_default();
    assert!(
        message.contains(&eks_secret) && message.contains("cluster_endpoint"),
        "{message}"
    );
    assert!(
        env.applies()
            .get_opt(&names::profile_apply_name(CP, "no-endpoint"))
            .await
            .unwrap()
            .is_none(),
        "created without the key"
    );
    assert_quiet(&env, &operator, "waiting for a missing key").await;
    let mut secret = env.secrets().get(&eks_secret).await.unwrap();
    secret
        .data
        .as_mut()
        .unwrap()
        .insert("cluster_endpoint".into(), endpoint);
    env.secrets()
        .replace(&eks_secret, &PostParams::default(), &secret)
        .await
        .unwrap();
    env.all_ready(6).await;
    assert_quiet(&env, &operator, "converged after the key came back").await;
    env.assert_no_duplicates(&["monitoring", "batch-jobs", "no-secret", "no-endpoint"])
        .await;
    delete_and_stop(env, operator, started).await;
}

/// (b) The profile template is deleted: a newly added profile's apply says so, the control
/// plane reports that profile Failed with the same reason, and recreating the template
/// recovers.
#[tokio::test]
async fn bad_dependencies_missing_template_fails_the_new_profile_and_recovers() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let (env, operator) = converged("faults-template").await;

    let templates: Api<WorkspaceTemplate> = Api::namespaced(env.client.clone(), &env.ns.name);
    templates
        .delete("eks-fargate-profile", &Default::default())
        .await
        .unwrap();
    eventually("template gone", WAIT, || async {
        match templates
            .get_opt("eks-fargate-profile")
            .await
            .map_err(|e| e.to_string())?
        {
            None => Ok(()),
            Some(_) => Err("still there".into()),
        }
    })
    .await;
    env.add_profile("no-template").await;
    // Either its apply is created and fails, or it is held back behind another profile.
    let p = wait_profile(&env, "no-template", "no-template Failed or blocked", |p| {
        p.phase == Some(FargateProfilePhase::Failed)
            || p.failure_reason.as_deref() == Some("BlockedByFailedProfile")
    })
    .await;
    let cp = env.cps().get(CP).await.unwrap();
    let others: Vec<String> = cp
        .status
        .iter()
        .flat_map(|s| &s.fargate_profiles)
        .filter(|s| s.name != "no-template")
        .map(|s| format!("{}={:?}/{:?}", s.name, s.phase, s.failure_reason))
        .collect();
    assert_eq!(
        p.phase,
        Some(FargateProfilePhase::Failed),
        "the new profile never got an apply: {p:?}; the profiles that already existed (their Workspaces applied and Ready) \
         were turned Failed by the missing template and block it: {others:?}"
    );
    assert_eq!(
        p.failure_reason.as_deref(),
        Some("TemplateNotFound"),
        "{p:?}"
    );
    let apply_name = names::profile_apply_name(CP, "no-template");
    let apply = env.applies().get(&apply_name).await.unwrap();
    let synced = apply
        .status
        .as_ref()
        .and_then(|s| find(&s.conditions, SYNCED).cloned())
        .expect("Synced condition");
    assert_eq!(
        (synced.status.as_str(), synced.reason.as_str()),
        ("False", "TemplateNotFound"),
        "{synced:?}"
    );
    assert!(
        synced
            .message
            .as_deref()
            .unwrap_or("")
            .contains("eks-fargate-profile"),
        "{synced:?}"
    );
    let failed = condition_of(&cp, "FargateProfileFailed").expect("FargateProfileFailed condition");
    assert_eq!(
        (failed.status.as_str(), failed.reason.as_str()),
        ("True", "TemplateNotFound"),
        "{failed:?}"
    );
    for name in ["monitoring", "batch-jobs"] {
        let s = env.profile_status(name).await.unwrap();
        assert_eq!(
            s.phase,
            Some(FargateProfilePhase::Ready),
            "{name} exists and is unaffected by the missing template: {s:?}"
        );
    }
    assert_quiet(&env, &operator, "the template is missing").await;

    support::apply_yaml(
        &env.client,
        &env.ns.name,
        &support::repo_root().join("config/workspacetemplates/fargate-profile.yaml"),
    )
    .await;
    let cp = env.all_ready(5).await;
    assert_eq!(
        condition_of(&cp, "FargateProfileFailed").map(|c| c.status.as_str()),
        Some("False")
    );
    assert_quiet(&env, &operator, "converged after the template came back").await;
    env.assert_no_duplicates(&["monitoring", "batch-jobs", "no-template"])
        .await;
    delete_and_stop(env, operator, started).await;
}

/// (c) A child apply edited by hand is restored, without replacing the profile.
#[tokio::test]
async fn bad_dependencies_hand_edited_child_apply_is_restored() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let (env, operator) = converged("faults-edit").await;

    let name = &names::profile_apply_name(CP, "monitoring");
    let patch = json!({ "spec": { "variables": { "profile_name": "hijacked", "cluster_name": "elsewhere" } } });
    env.applies()
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("edited apply restored", WAIT, || async {
        let a = env.applies().get(name).await.map_err(|e| e.to_string())?;
        let vars = a.spec.variables.unwrap_or_default();
        let (p, c) = (
            vars.get("profile_name").cloned().unwrap_or_default(),
            vars.get("cluster_name").cloned().unwrap_or_default(),
        );
        if p == "monitoring" && c == CP {
            Ok(())
        } else {
            Err(format!("{p} {c}"))
        }
    })
    .await;
    env.all_ready(4).await;
    assert_quiet(&env, &operator, "a hand edit was restored").await;
    let ws = env.workspaces().await;
    let ws = ws
        .iter()
        .find(|w| w.name_any() == env.workspace_of(name))
        .expect("monitoring Workspace");
    assert_eq!(
        ws.spec.for_provider.varmap.as_ref().unwrap()["profile_name"],
        json!("monitoring")
    );
    assert!(
        env.provider
            .observations
            .lock()
            .unwrap()
            .destroys
            .is_empty(),
        "a hand edit made a profile be destroyed"
    );
    env.assert_no_duplicates(&["monitoring", "batch-jobs"])
        .await;
    delete_and_stop(env, operator, started).await;
}

/// (d) Concurrent updates of the control plane (409s for whoever writes with a stale
/// resourceVersion) while it reconciles a change, and while it is deleted (its finalizer is
/// removed with a resourceVersion precondition).
#[tokio::test]
async fn bad_dependencies_conflicting_updates_still_converge() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let (env, operator) = converged("faults-conflict").await;

    let hammer = tokio::spawn(hammer_labels(
        env.cps(),
        "during-change",
        50,
        Duration::ZERO,
    ));
    env.add_profile("contended").await;
    let conflicts = hammer.await.unwrap();
    println!("{conflicts} conflicts while updating labels 50 times during a change");
    let cp = env.all_ready(5).await;
    assert_eq!(
        cp.labels()
            .get("faults.capt-fargate.io/during-change")
            .map(String::as_str),
        Some("49"),
        "a label update was lost"
    );
    assert!(
        cp.finalizers()
            .iter()
            .any(|f| f == names::CONTROL_PLANE_FINALIZER),
        "finalizer lost: {:?}",
        cp.finalizers()
    );
    assert_quiet(&env, &operator, "converged after concurrent updates").await;
    env.assert_no_duplicates(&["monitoring", "batch-jobs", "contended"])
        .await;

    // Spread over the teardown, so that the finalizer's removal meets a newer resourceVersion.
    env.cps().delete(CP, &Default::default()).await.unwrap();
    let conflicts = hammer_labels(env.cps(), "during-delete", 50, Duration::from_millis(40)).await;
    println!("{conflicts} conflicts while updating labels during deletion");
    env.assert_deleted_completely().await;
    env.assert_no_concurrent_operations();
    let errors: Vec<String> = operator
        .metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("capt_fargate_reconcile_errors_total"))
        .map(str::to_string)
        .collect();
    println!(
        "reconcile errors: {errors:?}; {:?} in all",
        started.elapsed()
    );
    operator.stop().await;
    env.stop().await;
}
