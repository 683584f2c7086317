//! A simulated provider-terraform for tests: it watches Workspaces on the real API server and
//! answers as the real provider (v1.0, crossplane-runtime v2) would, with AWS and Terraform
//! simulated.
//!
//! - The inline module is parsed (hcl-rs); a required variable that no `vars`, `varmap` or var
//!   file sets fails like `terraform plan` does, and every var file's Secret and key must
//!   exist, on deletion too (the observation plans first): without them a destroy cannot run.
//! - Writes as the managed reconciler's: the `crossplane.io/external-name` annotation, then
//!   the finalizer, then `crossplane.io/external-create-pending`, the apply (synchronous:
//!   nothing is written while it runs), `crossplane.io/external-create-succeeded`, each an
//!   update of its own; then `Ready=False/Creating` with `Synced=True`, and
//!   `Ready=True/Available` at the next observation. Only `Synced`, `Creating` and `Deleting`
//!   carry `observedGeneration`; `Available` does not.
//! - Requeues as the managed reconciler's: after a create (to observe it) and after an error,
//!   through crossplane-runtime's per-item rate limiter (1 s, doubling with each one in a row,
//!   at most 60 s; reset by a reconcile that ends without one); in scaled time, short fixed
//!   delays ([`Shared::rate_limited`]). A status update from a stale cache fails with a
//!   conflict and waits out the same backoff: about one per create remains, as with the real
//!   provider (the echo of `external-create-succeeded` wakes a reconcile that reads the version
//!   before the status update). Not modelled: controller-runtime's delaying queue keeps the
//!   create's 1 s requeue beside that immediate reconcile, while kube-runtime's scheduler keeps
//!   the earliest only, so the retry after that conflict comes after 2 s instead of about 1 s.
//! - Errors are `Synced=False/ReconcileError` for the current generation, worded as the real
//!   ones (`create failed: `, `update failed: `, `delete failed: `, `cannot observe external
//!   resource: `, then Terraform's message shape); `Ready` stays as it was, so a Workspace
//!   whose update fails keeps `Ready=True`. Observation errors on a Ready Workspace (throttling
//!   during the refresh, expired credentials) are injected with
//!   [`SimulatedProvider::inject_observe_failure`].
//! - The connection Secret is published at every observation (empty before the first apply,
//!   then one key per output: strings raw, other values as JSON), controller-owned by the
//!   Workspace and garbage-collected after it; an existing Secret that no one controls is
//!   refused (`refusing to modify uncontrolled secret`). Non-sensitive outputs also go to
//!   `status.atProvider.outputs`.
//! - Terraform state lives in a remote backend, by Terraform workspace (the external name):
//!   a plan compares the Workspace's configuration with the state's, so a new Workspace of an
//!   existing state (recreated on another management cluster by `clusterctl move`, see
//!   [`SimulatedProvider::start_sharing_backend`]) is Ready without an apply.
//! - `deletionPolicy: Orphan`: deletion neither observes nor destroys; the state stays in the
//!   backend and the Fargate profiles in AWS: a later create of the same profile by another
//!   Terraform workspace fails with "already exists".
//! - AWS's rule is enforced: while one Fargate profile of a cluster is being created or
//!   deleted, creating or deleting another (or deleting the same one) fails with
//!   ResourceInUseException. Every Fargate profile operation is recorded per cluster, with its
//!   start and end, whichever Workspace runs it: an additional profile's Workspace, or the EKS
//!   cluster's Workspace creating and deleting the default profiles of its `fargate_profiles`
//!   variable. A refused operation is recorded too, so [`Observations::overlaps`] lists it
//!   and a test can prove that the operator never caused one. The simulator never queues an
//!   operation behind another Workspace's: that would hide the overlap it is there to see.
//! - Failures are injected per Workspace with the annotation [`FAIL_ANNOTATION`] (its apply
//!   or destroy fails, or its plan when it is applied), or per profile.
//! - Serialised mode (environment variable [`SERIAL_ENV`]): one reconcile at a time, as the
//!   real provider's default `--max-reconcile-rate 1`, with each apply or destroy running to
//!   its end inside the reconcile; [`RATE_ENV`] sets another `--max-reconcile-rate` (that
//!   many reconciles at a time). Not modelled: the rate's other half, a global limit of that
//!   many reconciles started per second (negligible against minutes of Terraform, but a
//!   second would be tens of scaled minutes).
//! - Scaled time ([`Timing`]; on by default in serialised mode, [`MINUTE_ENV`] sets the
//!   scale): AWS and Terraform take realistic durations, with one real minute lasting a few
//!   milliseconds: the EKS cluster's create, each Fargate profile operation, a plan at every
//!   reconcile that runs Terraform; a Ready Workspace is planned again every `--poll` (10 min
//!   ± 1 min); a serialised reconcile still running at `--timeout` (20 min) is killed with the
//!   real provider's error (`shutdown while running terraform command: context deadline
//!   exceeded`), while what it started in AWS runs on. The next reconcile resumes where the
//!   killed one stopped, as Terraform with a remote backend does for resources that finished
//!   meanwhile (real Terraform taints a resource interrupted mid-create and replaces it).
//! - Not modelled: the poll without [`Timing`] (a Workspace is planned again only on a
//!   change, or every 200 ms while an observation failure is injected), the timeout in
//!   concurrent mode (its reconciles do not block), the EKS cluster's deletion time, and a
//!   create interrupted mid-way (`external-create-pending` without `succeeded`).
//! - `crossplane.io/paused: "true"`: the reconcile does nothing but report
//!   `Synced=False/ReconcilePaused` (checked before a deletion, so a paused Workspace is not
//!   deleted, even under Orphan); a reconcile already running finishes first.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use capt_fargate::api::Workspace;
use capt_fargate::api::conditions::{READY, find};

/// What the provider reacts to: everything but status.
fn desired_state(ws: &Workspace) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let meta = &ws.metadata;
    let mut hasher = DefaultHasher::new();
    (
        &meta.uid,
        meta.generation,
        &meta.labels,
        &meta.annotations,
        &meta.finalizers,
        meta.deletion_timestamp.is_some(),
    )
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// Annotation whose value makes every apply or destroy of the Workspace fail with it.
pub const FAIL_ANNOTATION: &str = "simulated.capt-fargate.io/fail";
const FINALIZER: &str = "finalizer.managedresource.crossplane.io";

/// What a Fargate profile operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationKind {
    /// `CreateFargateProfile`.
    Create,
    /// `DeleteFargateProfile`.
    Delete,
}

/// One Fargate profile create or delete that a Workspace asked AWS for.
#[derive(Clone, Debug)]
pub struct FargateOperation {
    /// EKS cluster name, from the Workspace's `cluster_name` variable.
    pub cluster: String,
    /// The Fargate profile's name.
    pub profile: String,
    /// Create or delete.
    pub kind: OperationKind,
    /// Whether it is a default profile (run by the EKS cluster's Workspace).
    pub default_profile: bool,
    /// The Workspace that ran it.
    pub workspace: String,
    workspace_uid: String,
    /// When AWS accepted (or refused) it.
    pub started: Instant,
    /// When it ends or ended; equal to `started` for a refused operation.
    pub ended: Instant,
    /// Set when AWS refused it with ResourceInUseException: the operation that was in flight.
    pub refused_because: Option<String>,
}

/// Scaled time: how long one real minute lasts in a test, and how many real minutes AWS,
/// Terraform and provider-terraform take. Figures: an EKS control plane takes 10-15 minutes to
/// create and a Fargate profile a few minutes to create or delete (EKS User Guide); the
/// provider's flags default to `--timeout 20m`, `--poll 10m`, `--poll-jitter 1m`
/// (provider-terraform `cmd/provider/main.go`).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long one real minute lasts.
    pub minute: Duration,
    /// Real minutes of the EKS cluster's create (before its default profiles).
    pub cluster_create: f64,
    /// Real minutes of one Fargate profile create or delete.
    pub profile_operation: f64,
    /// Real minutes of `terraform init` and `plan` in a reconcile that runs Terraform.
    pub plan: f64,
    /// `--timeout`, real minutes: a serialised reconcile is killed after it.
    pub timeout: f64,
    /// `--poll`, real minutes: a Ready Workspace is planned again after it.
    pub poll: f64,
    /// `--poll-jitter`, real minutes: the poll varies by up to this much either way.
    pub poll_jitter: f64,
}

impl Timing {
    /// Realistic figures (12 min cluster, 3 min per profile operation, 0.5 min plan) and the
    /// provider's default flags, at `minute` per real minute.
    pub fn realistic(minute: Duration) -> Self {
        Timing {
            minute,
            cluster_create: 12.0,
            profile_operation: 3.0,
            plan: 0.5,
            timeout: 20.0,
            poll: 10.0,
            poll_jitter: 1.0,
        }
    }

    /// Test time of `minutes` real minutes.
    pub fn of(&self, minutes: f64) -> Duration {
        self.minute.mul_f64(minutes)
    }

    /// The next poll's delay for the Workspace `uid`: `--poll` ± `--poll-jitter`.
    fn poll_after(&self, uid: &str) -> Duration {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut hasher = DefaultHasher::new();
        (uid, Instant::now()).hash(&mut hasher);
        let spread = (hasher.finish() % 2001) as f64 / 1000.0 - 1.0;
        self.of(self.poll + spread * self.poll_jitter)
    }
}

/// Environment variable: how many milliseconds one real minute lasts ([`Timing::minute`]).
/// Serialised mode uses [`DEFAULT_MINUTE`] when it is unset.
pub const MINUTE_ENV: &str = "CAPT_SIM_MINUTE_MS";
/// Environment variable: `--poll` in real minutes ([`Timing::poll`], 10 by default).
pub const POLL_ENV: &str = "CAPT_SIM_POLL_MINUTES";
/// Environment variable: provider-terraform's `--max-reconcile-rate`, reconciles at a time;
/// setting it implies serialised mode ([`SERIAL_ENV`], whose rate is 1).
pub const RATE_ENV: &str = "CAPT_SIM_MAX_RECONCILE_RATE";
/// One real minute in serialised mode when [`MINUTE_ENV`] is unset: an EKS cluster with its
/// two default profiles (18 real minutes) takes 1.8 s.
pub const DEFAULT_MINUTE: Duration = Duration::from_millis(100);

/// How the provider runs: serialised or not, and its scaled time, if any.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mode {
    /// Reconciles block for their applies and destroys, at most [`Mode::rate`] at a time
    /// ([`SERIAL_ENV`], [`RATE_ENV`]); otherwise every reconcile runs at once and returns.
    pub serial: bool,
    /// `--max-reconcile-rate` in serialised mode: reconciles at a time (0 is taken as 1).
    pub rate: u16,
    /// Scaled time; None: operations take the `delay` given, Terraform no time.
    pub timing: Option<Timing>,
}

impl Mode {
    /// The mode the environment asks for: [`SERIAL_ENV`] or [`RATE_ENV`], with [`MINUTE_ENV`]
    /// (or [`DEFAULT_MINUTE`] when serialised) for the scaled time.
    pub fn from_env() -> Self {
        let rate = std::env::var(RATE_ENV)
            .ok()
            .and_then(|v| v.parse::<u16>().ok());
        let serial = serial_mode() || rate.is_some();
        let minute = std::env::var(MINUTE_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis)
            .or(serial.then_some(DEFAULT_MINUTE));
        let poll = std::env::var(POLL_ENV)
            .ok()
            .and_then(|v| v.parse::<f64>().ok());
        Mode {
            serial,
            rate: rate.unwrap_or(1).max(1),
            timing: minute.map(|m| Timing {
                poll: poll.unwrap_or(10.0),
                ..Timing::realistic(m)
            }),
        }
    }
}

impl FargateOperation {
    fn in_flight(&self, now: Instant) -> bool {
        self.refused_because.is_none() && self.ended > now
    }

    fn describe(&self, epoch: Instant) -> String {
        let kind = match self.kind {
            OperationKind::Create => "create",
            OperationKind::Delete => "delete",
        };
        let which = if self.default_profile {
            "default profile"
        } else {
            "profile"
        };
        let at = |t: Instant| t.saturating_duration_since(epoch).as_secs_f64();
        let when = match &self.refused_because {
            Some(_) => format!("at {:.3}s, refused", at(self.started)),
            None => format!("{:.3}s-{:.3}s", at(self.started), at(self.ended)),
        };
        format!(
            "{kind} of {which} {} by Workspace {} ({when})",
            self.profile, self.workspace
        )
    }

    /// Whether the two operations were in progress on one cluster at the same moment (a
    /// refused one at the moment it was refused).
    fn overlaps(&self, other: &FargateOperation) -> bool {
        if self.cluster != other.cluster {
            return false;
        }
        let (lo, hi) = (self.started.max(other.started), self.ended.min(other.ended));
        // A refused operation is a moment: it overlaps what was in flight at that moment.
        let refused = self.refused_because.is_some() != other.refused_because.is_some();
        lo < hi || (refused && lo == hi)
    }
}

/// What the simulated provider saw and did.
pub struct Observations {
    /// Successful applies per Workspace.
    pub applies: BTreeMap<String, u32>,
    /// Destroys per Workspace.
    pub destroys: BTreeMap<String, u32>,
    /// Workspaces in the order they were destroyed.
    pub destroy_order: Vec<String>,
    /// Workspaces in the order their first apply (create) succeeded.
    pub create_order: Vec<String>,
    /// Every Fargate profile operation, accepted or refused, in the order they were asked for.
    pub operations: Vec<FargateOperation>,
    /// The Fargate profiles each Terraform state (by Terraform workspace, the Workspace's
    /// external name) holds in AWS, with their immutable settings: what its next apply or
    /// destroy compares against. Kept in the state backend, so a Workspace deleted under
    /// `Orphan` leaves it and a new Workspace of the same external name adopts it.
    held: HashMap<String, BTreeMap<String, Value>>,
    /// The backend's record of each Terraform state (by Terraform workspace): the
    /// configuration it was last applied with ([`configuration`]), so a plan of the same
    /// configuration by any Workspace, on any management cluster, shows no changes.
    states: HashMap<String, u64>,
    /// Fargate profiles left in AWS by Workspaces deleted under `deletionPolicy: Orphan`, by
    /// cluster: a later create of the same name fails with "already exists".
    orphaned: HashMap<String, std::collections::BTreeSet<String>>,
    /// The generation each Workspace (by uid) last applied: a plan of it shows no changes.
    applied_generation: HashMap<String, Option<i64>>,
    /// When the provider started; operation times are shown relative to it.
    epoch: Instant,
    /// When each EKS Workspace's (by uid) cluster create ends or ended (scaled time only).
    clusters: HashMap<String, Instant>,
    /// Time in reconciles, summed over every reconcile (with a rate above 1, reconciles that
    /// run at once each count).
    pub reconcile_time: Duration,
    /// The part of [`Self::reconcile_time`] spent waiting for scaled Terraform and AWS time
    /// (plans, applies, destroys); the rest is the provider's API requests and its own work,
    /// which a scaled clock inflates into minutes.
    pub scaled_time: Duration,
}

impl Default for Observations {
    fn default() -> Self {
        Observations {
            applies: BTreeMap::new(),
            destroys: BTreeMap::new(),
            destroy_order: Vec::new(),
            create_order: Vec::new(),
            operations: Vec::new(),
            held: HashMap::new(),
            states: HashMap::new(),
            applied_generation: HashMap::new(),
            orphaned: HashMap::new(),
            epoch: Instant::now(),
            clusters: HashMap::new(),
            reconcile_time: Duration::ZERO,
            scaled_time: Duration::ZERO,
        }
    }
}

impl Observations {
    /// The names of the Fargate profiles the Terraform state `key` holds.
    fn held_profiles(&self, key: &str) -> Vec<String> {
        self.held
            .get(key)
            .into_iter()
            .flatten()
            .map(|(p, _)| p.clone())
            .collect()
    }
}

/// The next step of a Workspace's Fargate profile operations.
#[derive(Debug, PartialEq)]
enum Step {
    /// Its profiles are as the Workspace says.
    Done,
    /// An operation of its own runs for this long.
    Wait(Duration),
    /// AWS refused the next operation; Terraform's error summary.
    Refused(String),
    /// The reconcile ran into `--timeout` and was killed (serialised, scaled time only).
    TimedOut,
}

/// Who asks for Fargate profile operations.
struct Asker<'a> {
    cluster: &'a str,
    workspace: &'a str,
    uid: &'a str,
    /// Its Terraform state (the Terraform workspace's name).
    state: &'a str,
    default_profiles: bool,
}

impl Observations {
    /// Every pair of Fargate profile operations that were in progress on one cluster at the
    /// same moment, described (AWS allows one at a time per cluster). Empty when the operator
    /// kept to that rule.
    pub fn overlaps(&self) -> Vec<String> {
        let mut found = Vec::new();
        for (i, a) in self.operations.iter().enumerate() {
            for b in &self.operations[i + 1..] {
                if a.overlaps(b) {
                    found.push(format!(
                        "cluster {}: {} overlaps {}",
                        a.cluster,
                        b.describe(self.epoch),
                        a.describe(self.epoch)
                    ));
                }
            }
        }
        found
    }

    /// The accepted operations as (kind, profile, default profile), in order.
    pub fn accepted(&self) -> Vec<(OperationKind, String, bool)> {
        self.operations
            .iter()
            .filter(|o| o.refused_because.is_none())
            .map(|o| (o.kind, o.profile.clone(), o.default_profile))
            .collect()
    }

    /// Takes the next step towards `desired` (profile name -> immutable settings) for the
    /// Workspace `asker`, at `now`; each operation takes `delay`. Like Terraform with the AWS
    /// provider (which serialises the Fargate profile operations of one cluster within a
    /// run), a Workspace runs its own operations one after the other: deletes first, then
    /// creates. Anything else in flight on the cluster makes AWS refuse, including the
    /// Workspace's own create when it is being deleted.
    fn step(
        &mut self,
        asker: &Asker,
        desired: &BTreeMap<String, Value>,
        deleting: bool,
        delay: Duration,
        now: Instant,
    ) -> Step {
        loop {
            let own = self
                .operations
                .iter()
                .find(|o| o.workspace_uid == asker.uid && o.in_flight(now));
            if let Some(own) = own
                && !(deleting && own.kind == OperationKind::Create)
            {
                return Step::Wait(own.ended - now);
            }
            let held = self.held.entry(asker.state.to_string()).or_default();
            let next = held
                .iter()
                .find(|(name, settings)| desired.get(*name) != Some(*settings))
                .map(|(name, _)| (OperationKind::Delete, name.clone()))
                .or_else(|| {
                    desired
                        .keys()
                        .find(|name| !held.contains_key(*name))
                        .map(|name| (OperationKind::Create, name.clone()))
                });
            let Some((kind, profile)) = next else {
                return Step::Done;
            };
            let mut op = FargateOperation {
                cluster: asker.cluster.to_string(),
                profile: profile.clone(),
                kind,
                default_profile: asker.default_profiles,
                workspace: asker.workspace.to_string(),
                workspace_uid: asker.uid.to_string(),
                started: now,
                ended: now + delay,
                refused_because: None,
            };
            if kind == OperationKind::Create
                && self
                    .orphaned
                    .get(asker.cluster)
                    .is_some_and(|o| o.contains(&profile))
            {
                return Step::Refused(format!(
                    "creating EKS Fargate Profile ({}:{profile}): ResourceInUseException: Fargate Profile already exists",
                    asker.cluster
                ));
            }
            let busy = self
                .operations
                .iter()
                .find(|o| o.cluster == asker.cluster && o.in_flight(now));
            if let Some(busy) = busy {
                let verb = match kind {
                    OperationKind::Create => "create",
                    OperationKind::Delete => "delete",
                };
                let status = match busy.kind {
                    OperationKind::Create => "CREATING",
                    OperationKind::Delete => "DELETING",
                };
                let message = format!(
                    "ResourceInUseException: Cannot {verb} Fargate Profile {profile} because cluster {} currently has Fargate profile {} in status {status}",
                    asker.cluster, busy.profile
                );
                op.refused_because = Some(busy.describe(self.epoch));
                op.ended = now;
                self.operations.push(op);
                return Step::Refused(message);
            }
            match kind {
                OperationKind::Create => {
                    held.insert(profile.clone(), desired[&profile].clone());
                }
                OperationKind::Delete => {
                    held.remove(&profile);
                }
            }
            self.operations.push(op);
            if !delay.is_zero() {
                return Step::Wait(delay);
            }
        }
    }
}

struct Shared {
    client: Client,
    /// Secrets of the watched namespace. Like provider-terraform, whose controller-runtime
    /// client reads Secrets from an informer, var files are read from this cache; a miss
    /// (another namespace, or a Secret the watch has not delivered yet) reads the API server.
    secrets: reflector::Store<Secret>,
    /// Parsed modules by the hash of their text: Terraform caches its init per checksum too,
    /// and parsing every module on every reconcile made the simulator a noticeable CPU load.
    modules: Mutex<HashMap<u64, Arc<Result<Module, String>>>>,
    /// Injected failures by Fargate profile name.
    failures: Arc<Mutex<HashMap<String, String>>>,
    delay: Duration,
    /// Serialised mode ([`SERIAL_ENV`], [`RATE_ENV`]): at most [`Mode::rate`] reconciles at a
    /// time, each apply or destroy running to its end within the reconcile.
    serial: bool,
    /// Scaled time, if any.
    timing: Option<Timing>,
    observations: Arc<Mutex<Observations>>,
    /// Output values reported instead of the simulated ones, by output name (every Workspace).
    outputs: Arc<Mutex<HashMap<String, Value>>>,
    /// Rate-limited requeues in a row per Workspace uid ([`Shared::rate_limited`]).
    backoffs: Mutex<HashMap<String, u32>>,
}

/// Environment variable that makes the simulated provider run as the real one does by default
/// (`--max-reconcile-rate 1`): one reconcile at a time, `terraform apply` and `destroy`
/// synchronous, so every other Workspace waits behind a long apply.
pub const SERIAL_ENV: &str = "CAPT_SIM_SERIAL";

fn serial_mode() -> bool {
    std::env::var_os(SERIAL_ENV).is_some()
}

/// A running simulated provider.
pub struct SimulatedProvider {
    /// What it observed.
    pub observations: Arc<Mutex<Observations>>,
    failures: Arc<Mutex<HashMap<String, String>>>,
    outputs: Arc<Mutex<HashMap<String, Value>>>,
    /// Makes the provider plan every Workspace again (its poll).
    poll: Arc<tokio::sync::Notify>,
    stop: tokio::sync::watch::Sender<bool>,
    running: Running,
}

/// Where the provider runs.
enum Running {
    /// A task on the caller's runtime.
    Task(tokio::task::JoinHandle<()>),
    /// A thread of its own (see [`SimulatedProvider::start_on_own_thread`]).
    Thread(std::thread::JoinHandle<()>),
}

impl SimulatedProvider {
    /// Starts answering for Workspaces of applies in `namespace`; each create or destroy of a
    /// Fargate profile takes `delay`. Serialised, with scaled time, when [`SERIAL_ENV`] is set
    /// (see [`Mode::from_env`]).
    pub fn start(client: Client, namespace: &str, delay: Duration) -> Self {
        Self::start_in(client, namespace, delay, Mode::from_env())
    }

    /// Like [`Self::start`], always with concurrent reconciles and without scaled time (for a
    /// test that needs Workspaces applied at the same time).
    pub fn start_concurrent(client: Client, namespace: &str, delay: Duration) -> Self {
        Self::start_in(client, namespace, delay, Mode::default())
    }

    /// Like [`Self::start`], in the given mode (with [`Timing`], `delay` is unused).
    pub fn start_in(client: Client, namespace: &str, delay: Duration, mode: Mode) -> Self {
        Self::start_on_backend(client, namespace, delay, mode, Arc::default())
    }

    /// Like [`Self::start`], as a second provider-terraform (e.g. on the management cluster
    /// a Cluster is moved to) whose ProviderConfig names the same remote state backend as
    /// `other`'s, in the same AWS account: both read and write the same Terraform states and
    /// Fargate profiles, and record into the same [`Observations`].
    pub fn start_sharing_backend(
        client: Client,
        namespace: &str,
        delay: Duration,
        other: &SimulatedProvider,
    ) -> Self {
        let observations = Arc::clone(&other.observations);
        Self::start_on_backend(client, namespace, delay, Mode::from_env(), observations)
    }

    fn start_on_backend(
        client: Client,
        namespace: &str,
        delay: Duration,
        mode: Mode,
        observations: Arc<Mutex<Observations>>,
    ) -> Self {
        let failures = Arc::default();
        let outputs: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
        let poll: Arc<tokio::sync::Notify> = Arc::default();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let serving = serve(
            client,
            namespace.to_string(),
            delay,
            Arc::clone(&observations),
            Arc::clone(&failures),
            Arc::clone(&poll),
            mode,
            Arc::clone(&outputs),
            stopped,
        );
        SimulatedProvider {
            observations,
            failures,
            outputs,
            poll,
            stop,
            running: Running::Task(tokio::spawn(serving)),
        }
    }

    /// Like [`Self::start`], but on a thread with a single-threaded runtime and a client of its
    /// own, as a separate provider process would be: its work neither runs on nor wakes the
    /// caller's threads, so a benchmark measures the operator's cost rather than the
    /// simulator's scheduling overhead on a shared runtime.
    pub fn start_on_own_thread(kubeconfig: &Path, namespace: &str, delay: Duration) -> Self {
        let (observations, failures) = (Arc::default(), Arc::default());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (kubeconfig, namespace) = (kubeconfig.to_path_buf(), namespace.to_string());
        let (obs, fail) = (Arc::clone(&observations), Arc::clone(&failures));
        let outputs: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
        let reported = Arc::clone(&outputs);
        let poll: Arc<tokio::sync::Notify> = Arc::default();
        let polled = Arc::clone(&poll);
        let thread = std::thread::Builder::new()
            .name("simulated-provider".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the simulated provider");
                runtime.block_on(async move {
                    let client = super::cluster::client_from(&kubeconfig).await;
                    let mode = Mode::from_env();
                    serve(
                        client, namespace, delay, obs, fail, polled, mode, reported, stopped,
                    )
                    .await;
                });
            })
            .expect("a thread for the simulated provider");
        SimulatedProvider {
            observations,
            failures,
            outputs,
            poll,
            stop,
            running: Running::Thread(thread),
        }
    }

    /// Reports `value` as the output `name` of every Workspace from now on; every Workspace is
    /// observed again at once (a poll), so applied ones publish it in their connection secret.
    pub fn report_output(&self, name: &str, value: Value) {
        self.outputs.lock().unwrap().insert(name.into(), value);
        self.poll.notify_one();
    }

    /// Reports the test API server of `kubeconfig` (its server URL and CA) as the EKS
    /// cluster's endpoint and CA, so that the kubeconfig the operator writes reaches it.
    pub fn report_test_cluster(&self, kubeconfig: &Path) {
        let config = kube::config::Kubeconfig::read_from(kubeconfig).expect("a kubeconfig");
        let cluster = config.clusters[0].cluster.clone().expect("a cluster entry");
        let ca = match (
            cluster.certificate_authority_data,
            cluster.certificate_authority,
        ) {
            (Some(data), _) => data,
            (None, Some(file)) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .encode(std::fs::read(file).expect("the CA file"))
            }
            (None, None) => panic!("the test kubeconfig names no CA"),
        };
        self.report_output(
            "cluster_endpoint",
            json!(cluster.server.expect("a server URL")),
        );
        self.report_output("cluster_certificate_authority_data", json!(ca));
    }

    /// Makes every apply of the Fargate profile `profile` fail with `message` (as AWS would,
    /// e.g. a quota error) until [`Self::clear_failure`].
    pub fn inject_failure(&self, profile: &str, message: &str) {
        self.failures
            .lock()
            .unwrap()
            .insert(profile.into(), message.into());
    }

    /// Makes every observation (`terraform plan`) of the Workspace named `workspace`, or of
    /// the Fargate profile named so, fail with `message`, as throttling during the refresh or
    /// expired credentials do, until [`Self::clear_observe_failure`]. It starts a poll at
    /// once, and while a failure is injected every healthy Workspace is planned again every
    /// 200 ms (the real provider plans every `--poll`), so a Ready Workspace shows the failure
    /// at its next plan; a failing one retries on the rate limiter's backoff.
    pub fn inject_observe_failure(&self, workspace: &str, message: &str) {
        self.failures
            .lock()
            .unwrap()
            .insert(format!("{OBSERVE_PREFIX}{workspace}"), message.into());
        self.poll.notify_one();
    }

    /// Lets the observations of `workspace` succeed again, at once (as [`Self::clear_failure`]).
    pub fn clear_observe_failure(&self, workspace: &str) {
        self.failures
            .lock()
            .unwrap()
            .remove(&format!("{OBSERVE_PREFIX}{workspace}"));
        self.poll.notify_one();
    }

    /// Lets `profile` succeed again. The real provider's retry comes after its backoff (up to
    /// 60 s after a run of failures); this one comes at once, as if that time had passed.
    pub fn clear_failure(&self, profile: &str) {
        self.failures.lock().unwrap().remove(profile);
        self.poll.notify_one();
    }

    /// Stops it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        match self.running {
            Running::Task(task) => {
                let _ = task.await;
            }
            Running::Thread(thread) => {
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
        }
    }

    /// Rejections caused by concurrent Fargate profile operations: (cluster, refused
    /// Workspace, what was in flight).
    pub fn rejections(&self) -> Vec<(String, String, String)> {
        let obs = self.observations.lock().unwrap();
        obs.operations
            .iter()
            .filter_map(|o| {
                let busy = o.refused_because.clone()?;
                Some((o.cluster.clone(), o.workspace.clone(), busy))
            })
            .collect()
    }

    /// Pairs of Fargate profile operations that overlapped on one cluster, described (see
    /// [`Observations::overlaps`]).
    pub fn overlaps(&self) -> Vec<String> {
        self.observations.lock().unwrap().overlaps()
    }
}

/// Watches the Workspaces of `namespace`'s applies and answers them until `stop` turns true.
#[allow(clippy::too_many_arguments)] // a provider process's settings, passed once
async fn serve(
    client: Client,
    namespace: String,
    delay: Duration,
    observations: Arc<Mutex<Observations>>,
    failures: Arc<Mutex<HashMap<String, String>>>,
    poll: Arc<tokio::sync::Notify>,
    mode: Mode,
    outputs: Arc<Mutex<HashMap<String, Value>>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let (secrets, secrets_writer) = reflector::store();
    let secret_watch = watcher(
        Api::<Secret>::namespaced(client.clone(), &namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(secrets_writer)
    .for_each(|_| async {});
    let shared = Arc::new(Shared {
        secrets,
        modules: Mutex::default(),
        serial: mode.serial,
        timing: mode.timing,
        client: client.clone(),
        failures,
        delay: match mode.timing {
            Some(t) => t.of(t.profile_operation),
            None => delay,
        },
        observations,
        outputs,
        backoffs: Mutex::default(),
    });
    let selector = format!(
        "{}={}",
        capt_fargate::names::LABEL_APPLY_NAMESPACE,
        namespace
    );
    // Like crossplane-runtime's managed reconciler, react to what the user changes (spec,
    // labels, annotations, finalizers, deletion), not to its own status writes.
    let (reader, writer) = reflector::store();
    // A relist's objects reach the controller once its store holds them, as controller-runtime's
    // informers hand them over (`capt_fargate::runtime::relist`).
    let workspaces = capt_fargate::runtime::relist::after_store(
        watcher(
            Api::<Workspace>::all(client),
            watcher::Config::default().labels(&selector),
        )
        .default_backoff()
        .reflect(writer),
        reader.clone(),
    )
    .applied_objects()
    .predicate_filter(desired_state, Default::default());
    let polls = futures::stream::unfold(poll, |poll| async move {
        poll.notified().await;
        Some(((), poll))
    });
    // `--max-reconcile-rate`; 0: unlimited.
    let concurrency = if shared.serial { mode.rate.max(1) } else { 0 };
    let controller = Controller::for_stream(workspaces, reader)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .reconcile_all_on(polls)
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .run(
            timed_reconcile,
            |ws, _, shared| shared.rate_limited(&ws, Requeue::Error),
            shared,
        )
        .for_each(|_| async {});
    // The secret watch lives as long as the controller.
    tokio::select! {
        _ = controller => {}
        _ = secret_watch => {}
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SimError(String);

impl From<kube::Error> for SimError {
    fn from(e: kube::Error) -> Self {
        SimError(e.to_string())
    }
}

/// The module's variables (name → has default) and outputs (name → sensitive).
struct Module {
    variables: BTreeMap<String, bool>,
    outputs: BTreeMap<String, bool>,
    fargate_profile: bool,
}

fn parse_module(text: &str) -> Result<Module, String> {
    let body = hcl::parse(text).map_err(|e| format!("Error: Invalid HCL: {e}"))?;
    let mut module = Module {
        variables: BTreeMap::new(),
        outputs: BTreeMap::new(),
        fargate_profile: false,
    };
    for block in body.blocks() {
        let label = block
            .labels()
            .first()
            .map(|l| l.as_str().to_string())
            .unwrap_or_default();
        match block.identifier() {
            "variable" => {
                module.variables.insert(
                    label,
                    block.body().attributes().any(|a| a.key() == "default"),
                );
            }
            "output" => {
                let sensitive = block.body().attributes().any(|a| {
                    a.key() == "sensitive" && matches!(a.expr(), hcl::Expression::Bool(true))
                });
                module.outputs.insert(label, sensitive);
            }
            "resource" if label == "aws_eks_fargate_profile" => module.fargate_profile = true,
            _ => {}
        }
    }
    Ok(module)
}

/// Terraform's error, as provider-terraform's `Classify` shapes it.
fn terraform_error(what: &str, summary: &str) -> String {
    format!(
        "{what}: Terraform encountered an error. Summary: {summary}. To see the full error run: echo \"H4sIAAAA\" | base64 -d | gunzip"
    )
}

/// An error of `terraform apply` (create, update) or `terraform destroy` (delete), with the
/// managed reconciler's prefix (`create failed`, `update failed`, `delete failed`).
fn action_error(verb: &str, summary: &str) -> String {
    let what = match verb {
        "delete" => "cannot destroy Terraform configuration",
        _ => "cannot apply Terraform configuration",
    };
    format!("{verb} failed: {}", terraform_error(what, summary))
}

/// The error of a `terraform apply` or `destroy` killed at `--timeout`: provider-terraform
/// stops the process when the reconcile's context ends and returns the context's error
/// unclassified (its `runCommand`), wrapped as any apply or destroy error.
fn killed(verb: &str) -> String {
    let what = match verb {
        "delete" => "cannot destroy Terraform configuration",
        _ => "cannot apply Terraform configuration",
    };
    format!(
        "{verb} failed: {what}: shutdown while running terraform command: context deadline exceeded"
    )
}

fn uid_of(ws: &Workspace) -> String {
    ws.uid().unwrap_or_default()
}

/// An error of the observation (`terraform plan`, reading var files), with the managed
/// reconciler's prefix.
fn observe_error(summary: &str) -> String {
    format!(
        "cannot observe external resource: {}",
        terraform_error("cannot diff Terraform plan", summary)
    )
}

fn string_input(ws: &Workspace, key: &str) -> Option<String> {
    let fp = &ws.spec.for_provider;
    if let Some(v) = fp.varmap.as_ref().and_then(|m| m.get(key)) {
        return v.as_str().map(str::to_string);
    }
    fp.vars
        .iter()
        .flatten()
        .find(|v| v.key == key)
        .map(|v| v.value.clone())
}

/// Names set by vars, varmap and var files; an error if a var file's Secret or key is missing.
async fn provided_inputs(shared: &Shared, ws: &Workspace) -> Result<Vec<String>, String> {
    let fp = &ws.spec.for_provider;
    let mut names: Vec<String> = fp.vars.iter().flatten().map(|v| v.key.clone()).collect();
    names.extend(fp.varmap.iter().flat_map(|m| m.keys().cloned()));
    for file in fp.var_files.iter().flatten() {
        let Some(r) = &file.secret_key_ref else {
            continue;
        };
        // A cached copy without the key may predate the write that added it.
        let cached = shared
            .secrets
            .get(&reflector::ObjectRef::new(&r.name).within(&r.namespace))
            .filter(|s| s.data.as_ref().is_some_and(|d| d.contains_key(&r.key)));
        let secret = match cached {
            Some(secret) => Some(secret.as_ref().clone()),
            None => Api::<Secret>::namespaced(shared.client.clone(), &r.namespace)
                .get_opt(&r.name)
                .await
                .map_err(|e| e.to_string())?,
        };
        let secret = secret.ok_or_else(|| {
            format!(
                "cannot get Secret {}/{} for var file: not found",
                r.namespace, r.name
            )
        })?;
        let data = secret.data.unwrap_or_default();
        let bytes = data.get(&r.key).ok_or_else(|| {
            format!(
                "var file key {} not found in Secret {}/{}",
                r.key, r.namespace, r.name
            )
        })?;
        let body = hcl::parse(&String::from_utf8_lossy(&bytes.0))
            .map_err(|e| format!("Error: Invalid var file: {e}"))?;
        names.extend(body.attributes().map(|a| a.key().to_string()));
    }
    Ok(names)
}

fn output_value(shared: &Shared, ws: &Workspace, name: &str) -> Value {
    if let Some(value) = shared.outputs.lock().unwrap().get(name) {
        return value.clone();
    }
    let cluster = string_input(ws, "cluster_name").unwrap_or_else(|| "cluster".into());
    let profile = string_input(ws, "profile_name").unwrap_or_else(|| "profile".into());
    let region = string_input(ws, "region").unwrap_or_else(|| "ap-northeast-1".into());
    match name {
        "cluster_name" => json!(cluster),
        "cluster_endpoint" => json!(format!(
            "https://{}.gr7.{region}.eks.amazonaws.com",
            capt_fargate::names::short_hash(&cluster, 16)
        )),
        // Base64 of a PEM certificate block, as EKS reports it (not a usable CA).
        "cluster_certificate_authority_data" => {
            json!(
                "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJzekNDQVZtZ0F3SUJBZ0lVWTJGd2RBPT0KLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
            )
        }
        "oidc_provider_arn" => json!(format!(
            "arn:aws:iam::123456789012:oidc-provider/oidc.eks.{region}.amazonaws.com/id/SIM"
        )),
        "fargate_profiles" => ws
            .spec
            .for_provider
            .varmap
            .as_ref()
            .and_then(|m| m.get("fargate_profiles"))
            .cloned()
            .unwrap_or(json!({})),
        // EKS runs major.minor, as the module's `cluster_version` local computes it.
        "cluster_version" => {
            let wanted = string_input(ws, "kubernetes_version").unwrap_or_else(|| "1.31".into());
            let parts: Vec<&str> = wanted.trim_start_matches('v').split('.').take(2).collect();
            json!(parts.join("."))
        }
        "fargate_profile_name" => json!(profile),
        "fargate_profile_status" => json!("ACTIVE"),
        "fargate_profile_arn" => json!(format!(
            "arn:aws:eks:{region}:123456789012:fargateprofile/{cluster}/{profile}/sim"
        )),
        "pod_execution_role_arn" => json!(format!(
            "arn:aws:iam::123456789012:role/{cluster}-{profile}-pod-exec"
        )),
        // A VPC module (created, or an existing VPC described): three zones, a private and a
        // public subnet in each, and the HCL var file the other workspaces read.
        "vpc_id" => json!(vpc_id(ws)),
        "availability_zones" => json!(availability_zones(&region)),
        "private_subnets" => json!(subnets(ws, "private")),
        "public_subnets" => json!(subnets(ws, "public")),
        "vpc_config" => json!(format!(
            "vpc_id          = {}\nprivate_subnets = {}\npublic_subnets  = {}\n",
            json!(vpc_id(ws)),
            json!(subnets(ws, "private")),
            json!(subnets(ws, "public"))
        )),
        other => json!(format!("simulated-{other}")),
    }
}

/// The simulated VPC's ID: the existing VPC's (input `vpc_id`), or one derived from the
/// Workspace's name.
fn vpc_id(ws: &Workspace) -> String {
    string_input(ws, "vpc_id").unwrap_or_else(|| {
        format!(
            "vpc-{}",
            capt_fargate::names::short_hash(&ws.name_any(), 17)
        )
    })
}

/// Three availability zones of `region` (as AWS names them: the region and a letter).
fn availability_zones(region: &str) -> Vec<String> {
    ["a", "c", "d"]
        .iter()
        .map(|z| format!("{region}{z}"))
        .collect()
}

/// One `kind` subnet per availability zone.
fn subnets(ws: &Workspace, kind: &str) -> Vec<String> {
    (0..3)
        .map(|i| {
            let id = capt_fargate::names::short_hash(&format!("{}/{kind}/{i}", vpc_id(ws)), 17);
            format!("subnet-{id}")
        })
        .collect()
}

/// Writes `status` (its keys replace the old ones) as crossplane-runtime's managed reconciler
/// does, with `Status().Update`: a PUT of the object at the version this reconcile read, so a
/// write in between fails with a conflict and the reconcile is retried.
async fn patch_status(api: &Api<Workspace>, ws: &Workspace, status: Value) -> Result<(), SimError> {
    let mut merged = serde_json::to_value(&ws.status).map_err(|e| SimError(e.to_string()))?;
    if !merged.is_object() {
        merged = json!({});
    }
    if let (Some(into), Value::Object(from)) = (merged.as_object_mut(), status) {
        into.extend(from);
    }
    let mut updated = ws.clone();
    updated.status = Some(serde_json::from_value(merged).map_err(|e| SimError(e.to_string()))?);
    api.replace_status(&ws.name_any(), &post_params(), &updated)
        .await?;
    Ok(())
}

/// The field manager of the provider's writes (a controller-runtime client names the
/// binary's, which is this for provider-terraform).
const FIELD_MANAGER: &str = "provider-terraform";

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// Sets the finalizers as crossplane-runtime's `APIFinalizer` does: a PUT of the whole object
/// at the version read.
async fn put_finalizers(
    api: &Api<Workspace>,
    ws: &Workspace,
    finalizers: Vec<String>,
) -> Result<(), SimError> {
    let mut updated = ws.clone();
    updated.metadata.finalizers = Some(finalizers);
    api.replace(&ws.name_any(), &post_params(), &updated)
        .await?;
    Ok(())
}

/// Removes the provider's finalizer (the others stay), as the managed reconciler does once it
/// is done with a Workspace being deleted.
async fn release_finalizer(api: &Api<Workspace>, ws: &Workspace) -> Result<(), SimError> {
    let finalizers: Vec<String> = ws
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    put_finalizers(api, ws, finalizers).await
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    old: &Workspace,
) -> Value {
    let status = if status { "True" } else { "False" };
    let old_conditions = old
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let time = match find(old_conditions, type_) {
        Some(c) if c.status == status => serde_json::to_value(&c.last_transition_time).unwrap(),
        _ => json!(k8s_openapi::jiff::Timestamp::now().to_string()),
    };
    let mut c = json!({ "type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": time });
    // crossplane-runtime v2 stamps it only on the conditions its reconciler sets (Synced,
    // Creating, Deleting), not on Ready=True/Available.
    if let Some(g) = generation {
        c["observedGeneration"] = json!(g);
    }
    c
}

/// Reports an error as the managed reconciler does: `Synced=False/ReconcileError` for the
/// current generation; `Ready` stays as it was (a failed create shows `Creating`).
async fn fail(
    api: &Api<Workspace>,
    shared: &Shared,
    ws: &Workspace,
    message: &str,
) -> Result<Action, SimError> {
    let ready = find(
        ws.status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default(),
        READY,
    )
    .cloned();
    let ready = match ready {
        Some(c) => Some(condition(
            READY,
            c.is_true(),
            &c.reason,
            c.message.as_deref().unwrap_or(""),
            c.observed_generation,
            ws,
        )),
        None if message.starts_with("create failed") => Some(condition(
            READY,
            false,
            "Creating",
            "",
            ws.metadata.generation,
            ws,
        )),
        None => None,
    };
    let synced = condition(
        "Synced",
        false,
        "ReconcileError",
        message,
        ws.metadata.generation,
        ws,
    );
    let conditions: Vec<Value> = ready.into_iter().chain([synced]).collect();
    patch_status(api, ws, json!({ "conditions": conditions })).await?;
    // The real provider retries with backoff; a watch event (e.g. removing the injected
    // failure) retries at once.
    Ok(shared.rate_limited(ws, Requeue::Reported))
}

/// crossplane-runtime's pause annotation (reconciliation paused while it is `"true"`).
pub const PAUSED: &str = "crossplane.io/paused";

/// A paused reconcile: `Synced=False/ReconcilePaused` (no message) for the current generation,
/// the other conditions as they were; one status update, none while it is so already.
async fn paused(api: &Api<Workspace>, ws: &Workspace) -> Result<Action, SimError> {
    let conditions = ws
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    if find(conditions, "Synced").is_some_and(|c| c.reason == "ReconcilePaused") {
        return Ok(Action::await_change());
    }
    let mut kept: Vec<Value> = conditions
        .iter()
        .filter(|c| c.type_ != "Synced")
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    kept.push(condition(
        "Synced",
        false,
        "ReconcilePaused",
        "",
        ws.metadata.generation,
        ws,
    ));
    patch_status(api, ws, json!({ "conditions": kept })).await?;
    Ok(Action::await_change())
}

/// Key prefix of observe failures among the injected failures.
const OBSERVE_PREFIX: &str = "observe:";

impl Shared {
    /// The observe failure injected for the Workspace (by its name or its profile's).
    fn observe_failure(&self, ws: &Workspace) -> Option<String> {
        let failures = self.failures.lock().unwrap();
        let by = |name: &str| failures.get(&format!("{OBSERVE_PREFIX}{name}")).cloned();
        by(&ws.name_any()).or_else(|| by(&string_input(ws, "profile_name")?))
    }

    /// Whether Workspaces are polled (while an observe failure is injected).
    fn polling(&self) -> bool {
        let failures = self.failures.lock().unwrap();
        failures.keys().any(|k| k.starts_with(OBSERVE_PREFIX))
    }

    fn module(&self, text: &str) -> Arc<Result<Module, String>> {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut hasher = DefaultHasher::new();
        text.hash(&mut hasher);
        let key = hasher.finish();
        let mut modules = self.modules.lock().unwrap();
        if modules.len() > 256 {
            modules.clear();
        }
        modules
            .entry(key)
            .or_insert_with(|| Arc::new(parse_module(text)))
            .clone()
    }

    /// The Fargate profiles the Workspace stands for (name -> the settings AWS cannot change),
    /// None if it manages none: an additional profile's Workspace (its `profile_name`), or the
    /// EKS cluster's (the default profiles of its `fargate_profiles` variable).
    fn profiles_of(ws: &Workspace, module: &Module) -> Option<(bool, BTreeMap<String, Value>)> {
        let varmap = ws.spec.for_provider.varmap.clone().unwrap_or_default();
        if module.fargate_profile {
            let name = string_input(ws, "profile_name").unwrap_or_default();
            let settings = json!({ "selectors": varmap.get("selectors"), "subnet_ids": varmap.get("subnet_ids") });
            return Some((false, BTreeMap::from([(name, settings)])));
        }
        if module.variables.contains_key("fargate_profiles") {
            let profiles = varmap
                .get("fargate_profiles")
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            return Some((true, profiles));
        }
        None
    }

    /// Like [`Self::step`]; in serialised mode, waits for the Workspace's own operations to
    /// end (the reconcile blocks, as a synchronous `terraform apply` does), so it never
    /// returns [`Step::Wait`]. With scaled time, a reconcile that began at `began` is killed
    /// at `--timeout` ([`Step::TimedOut`]); what it started in AWS runs on.
    async fn serial_step(
        &self,
        ws: &Workspace,
        module: &Module,
        deleting: bool,
        began: Instant,
    ) -> Step {
        let deadline = self.timing.map(|t| began + t.of(t.timeout));
        loop {
            match self.step(ws, module, deleting) {
                Step::Wait(remaining) if self.serial => {
                    if let Some(deadline) = deadline
                        && Instant::now() + remaining > deadline
                    {
                        self.sleep_until(deadline).await;
                        return Step::TimedOut;
                    }
                    self.sleep_until(Instant::now() + remaining).await
                }
                other => return other,
            }
        }
    }

    /// With scaled time, `terraform init` and `plan`: the reconcile (serialised: every
    /// reconcile) waits for them.
    async fn plan(&self) {
        if let Some(t) = self.timing {
            self.sleep_until(Instant::now() + t.of(t.plan)).await;
        }
    }

    /// Waits for scaled Terraform or AWS time, counted in [`Observations::scaled_time`].
    async fn sleep_until(&self, until: Instant) {
        let start = Instant::now();
        tokio::time::sleep_until(until.into()).await;
        self.observations.lock().unwrap().scaled_time += start.elapsed();
    }

    /// The next step of the Workspace's Fargate profile operations (see [`Observations::step`]).
    fn step(&self, ws: &Workspace, module: &Module, deleting: bool) -> Step {
        let Some((default_profiles, mut desired)) = Self::profiles_of(ws, module) else {
            return Step::Done;
        };
        if deleting {
            desired.clear();
        }
        let (cluster, workspace) = (
            string_input(ws, "cluster_name").unwrap_or_default(),
            ws.name_any(),
        );
        let uid = ws.uid().unwrap_or_default();
        // With scaled time, the EKS cluster is created before its default profiles.
        if let Some(t) = self.timing.filter(|_| default_profiles && !deleting) {
            let now = Instant::now();
            let mut obs = self.observations.lock().unwrap();
            let ends = *obs
                .clusters
                .entry(uid.clone())
                .or_insert_with(|| now + t.of(t.cluster_create));
            if ends > now {
                return Step::Wait(ends - now);
            }
        }
        let state = state_key(ws);
        let asker = Asker {
            cluster: &cluster,
            workspace: &workspace,
            uid: &uid,
            state: &state,
            default_profiles,
        };
        self.observations.lock().unwrap().step(
            &asker,
            &desired,
            deleting,
            self.delay,
            Instant::now(),
        )
    }
}

/// crossplane-runtime's annotation naming the external resource (for provider-terraform, the
/// Terraform workspace); it defaults to the object's name.
pub const EXTERNAL_NAME: &str = "crossplane.io/external-name";
/// Set (with the time) just before a create, in an update of its own.
pub const EXTERNAL_CREATE_PENDING: &str = "crossplane.io/external-create-pending";
/// Set (with the time) just after a successful create, in an update of its own.
pub const EXTERNAL_CREATE_SUCCEEDED: &str = "crossplane.io/external-create-succeeded";
/// The type of the connection Secrets crossplane-runtime creates (and may adopt).
const CONNECTION_SECRET_TYPE: &str = "connection.crossplane.io/v1alpha1";

/// Sets one annotation with a PUT of the object read, as crossplane-runtime's reconciler does
/// (the external name at initialisation, the create annotations around a create).
async fn put_annotation(
    api: &Api<Workspace>,
    ws: &Workspace,
    key: &str,
    value: String,
) -> Result<Workspace, SimError> {
    let mut updated = ws.clone();
    updated
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(key.into(), value);
    Ok(api
        .replace(&ws.name_any(), &post_params(), &updated)
        .await?)
}

fn rfc3339_now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// [`reconcile`], its time counted in [`Observations::reconcile_time`].
async fn timed_reconcile(ws: Arc<Workspace>, shared: Arc<Shared>) -> Result<Action, SimError> {
    let start = Instant::now();
    let uid = uid_of(&ws);
    let requeues = shared.backoffs.lock().unwrap().get(&uid).copied();
    let result = reconcile(ws, Arc::clone(&shared)).await;
    shared.observations.lock().unwrap().reconcile_time += start.elapsed();
    // A reconcile that succeeds without asking for a rate-limited requeue resets the backoff
    // (controller-runtime's `Forget`).
    if result.is_ok() {
        let mut backoffs = shared.backoffs.lock().unwrap();
        if backoffs.get(&uid).copied() == requeues {
            backoffs.remove(&uid);
        }
    }
    result
}

/// crossplane-runtime's per-item rate limiter (`ratelimiter.NewController`, which
/// provider-terraform's controller uses): a requeue without a delay of its own (`Requeue: true`
/// after a create or an error, or an error returned) waits 1 s, doubling with each one in a row
/// up to 60 s, until a reconcile ends without one.
const BACKOFF_BASE_SECONDS: f64 = 1.0;
/// The limit of [`BACKOFF_BASE_SECONDS`]'s doubling.
const BACKOFF_MAX_SECONDS: f64 = 60.0;

/// Why a reconcile asks for a rate-limited requeue ([`Shared::rate_limited`]).
#[derive(Clone, Copy, Debug)]
enum Requeue {
    /// After a create, to observe it.
    Created,
    /// The reconcile returned an error (a conflict, an unreachable API server).
    Error,
    /// The reconcile reported an error in `Synced` ([`fail`]).
    Reported,
}

impl Shared {
    /// The rate-limited requeue of `ws` (crossplane-runtime's `Requeue: true`): the backoff's
    /// next delay. In scaled time, where a real second is a few milliseconds and the rate
    /// limiter's seconds are negligible against minutes of Terraform, fixed short delays
    /// instead (10 ms after a create, 200 ms after an error, 2 s after a reported one): real
    /// seconds there would stand for tens of minutes, and a scaled second (1.7 ms at 100 ms a
    /// minute) would hide a reported error before any controller, whose timing is real, could
    /// report it.
    fn rate_limited(&self, ws: &Workspace, why: Requeue) -> Action {
        if self.timing.is_some() {
            return Action::requeue(match why {
                Requeue::Created => Duration::from_millis(10),
                Requeue::Error => Duration::from_millis(200),
                Requeue::Reported => Duration::from_secs(2),
            });
        }
        let mut backoffs = self.backoffs.lock().unwrap();
        let requeues = backoffs.entry(uid_of(ws)).or_default();
        let seconds =
            (BACKOFF_BASE_SECONDS * 2f64.powi((*requeues).min(16) as i32)).min(BACKOFF_MAX_SECONDS);
        *requeues += 1;
        Action::requeue(Duration::from_secs_f64(seconds))
    }
}

async fn reconcile(ws: Arc<Workspace>, shared: Arc<Shared>) -> Result<Action, SimError> {
    // `--timeout` counts from the reconcile's start.
    let began = Instant::now();
    let api: Api<Workspace> = Api::all(shared.client.clone());
    let name = ws.name_any();
    let deleting = ws.metadata.deletion_timestamp.is_some();
    if deleting && !ws.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    // Paused, the managed reconciler does nothing else, not even a deletion (it checks the
    // pause first): `Synced=False/ReconcilePaused`, `Ready` as it was.
    if ws.annotations().get(PAUSED).is_some_and(|v| v == "true") {
        return paused(&api, &ws).await;
    }
    let uid = ws.uid().unwrap_or_default();
    let key = state_key(&ws);
    // Deleted under Orphan, the managed reconciler neither observes nor destroys: it releases
    // its finalizer. The Terraform state stays in the backend and the profiles in AWS.
    if deleting && ws.spec.deletion_policy.as_deref() == Some("Orphan") {
        release_finalizer(&api, &ws).await?;
        let mut obs = shared.observations.lock().unwrap();
        let held = obs.held_profiles(&key);
        let cluster = string_input(&ws, "cluster_name").unwrap_or_default();
        obs.orphaned.entry(cluster).or_default().extend(held);
        obs.applied_generation.remove(&uid);
        return Ok(Action::await_change());
    }
    // Initialise: the external name defaults to the object's name, in an update of its own.
    if !deleting && !ws.annotations().contains_key(EXTERNAL_NAME) {
        put_annotation(&api, &ws, EXTERNAL_NAME, name.clone()).await?;
        return Ok(Action::await_change());
    }

    // Observe (`terraform plan`): it reads the module and every var file, on deletion too.
    let parsed = shared.module(&ws.spec.for_provider.module);
    let module = match parsed.as_ref() {
        Ok(m) => m,
        Err(e) => return fail(&api, &shared, &ws, &observe_error(e)).await,
    };
    if let Some(message) = shared.observe_failure(&ws) {
        return fail(&api, &shared, &ws, &observe_error(&message)).await;
    }
    let provided = match provided_inputs(&shared, &ws).await {
        Ok(p) => p,
        Err(e) => return fail(&api, &shared, &ws, &observe_error(&e)).await,
    };
    if !deleting
        && let Some(missing) = module
            .variables
            .iter()
            .find(|(v, has_default)| !**has_default && !provided.contains(v))
    {
        let msg = format!(
            "No value for required variable: The root module input variable \"{}\" is not set",
            missing.0
        );
        return fail(&api, &shared, &ws, &observe_error(&msg)).await;
    }
    let injected = ws.annotations().get(FAIL_ANNOTATION).cloned().or_else(|| {
        let profile = string_input(&ws, "profile_name")?;
        shared.failures.lock().unwrap().get(&profile).cloned()
    });
    let (applied_generation, in_backend) = {
        let mut obs = shared.observations.lock().unwrap();
        let in_backend = obs.states.get(&key).copied();
        if in_backend.is_some() && !obs.applied_generation.contains_key(&uid) {
            // A new Workspace of an existing Terraform workspace (e.g. recreated on another
            // management cluster): its profiles are its own again, not orphans.
            let cluster = string_input(&ws, "cluster_name").unwrap_or_default();
            let held = obs.held_profiles(&key);
            if let Some(orphans) = obs.orphaned.get_mut(&cluster) {
                for p in held {
                    orphans.remove(&p);
                }
            }
        }
        (obs.applied_generation.get(&uid).copied(), in_backend)
    };
    let configured = configuration(&ws);
    let exists = applied_generation.is_some()
        || in_backend.is_some()
        || ws.status.as_ref().is_some_and(|s| s.at_provider.is_some());

    if deleting {
        if let Some(message) = injected {
            return fail(&api, &shared, &ws, &action_error("delete", &message)).await;
        }
        shared.plan().await;
        let step = shared.serial_step(&ws, module, true, began).await;
        match step {
            Step::Refused(message) => {
                return fail(&api, &shared, &ws, &action_error("delete", &message)).await;
            }
            Step::TimedOut => return fail(&api, &shared, &ws, &killed("delete")).await,
            Step::Wait(remaining) => {
                let conditions = ws
                    .status
                    .as_ref()
                    .map(|s| s.conditions.as_slice())
                    .unwrap_or_default();
                let shown = find(conditions, READY).is_some_and(|c| c.reason == "Deleting")
                    && find(conditions, "Synced").is_some_and(|c| c.is_true());
                if !shown {
                    let deleting =
                        condition(READY, false, "Deleting", "", ws.metadata.generation, &ws);
                    let synced = synced_success(&ws);
                    patch_status(&api, &ws, json!({ "conditions": [deleting, synced] })).await?;
                }
                return Ok(Action::requeue(remaining));
            }
            Step::Done => {}
        }
        // Destroyed. The connection Secret is not deleted: it is owned by the Workspace and
        // garbage-collected after it, as crossplane-runtime's publisher leaves it.
        release_finalizer(&api, &ws).await?;
        let mut obs = shared.observations.lock().unwrap();
        obs.held.remove(&key);
        obs.states.remove(&key);
        obs.applied_generation.remove(&uid);
        *obs.destroys.entry(name.clone()).or_default() += 1;
        obs.destroy_order.push(name);
        return Ok(Action::await_change());
    }

    // The observation publishes the connection details: the outputs in the state, none before
    // the first apply.
    if let Err(e) = publish_connection(&shared, &ws, module, exists).await {
        return fail(&api, &shared, &ws, &e).await;
    }
    if !ws.finalizers().iter().any(|f| f == FINALIZER) {
        let mut finalizers = ws.finalizers().to_vec();
        finalizers.push(FINALIZER.into());
        put_finalizers(&api, &ws, finalizers).await?;
        return Ok(Action::await_change());
    }

    let conditions = ws
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    // A plan shows no changes when the state holds this configuration (whichever Workspace
    // applied it), e.g. after a change of the deletion policy only.
    let up_to_date = in_backend == Some(configured)
        || match applied_generation {
            Some(g) => g == ws.metadata.generation,
            // A provider that restarted plans again; the conditions say what it had applied.
            None => {
                exists
                    && find(conditions, READY).is_some_and(|c| c.is_true())
                    && find(conditions, "Synced").is_some_and(|c| {
                        c.is_true() && c.observed_generation == ws.metadata.generation
                    })
            }
        };
    // An injected failure fails the plan of an applied Workspace (as throttling during the
    // refresh does), or its apply.
    if up_to_date && let Some(message) = injected {
        return fail(&api, &shared, &ws, &observe_error(&message)).await;
    }
    if up_to_date {
        shared.plan().await;
        // No diff: Available, and the reconcile succeeded for this generation.
        let shown = find(conditions, READY).is_some_and(|c| c.is_true())
            && find(conditions, "Synced")
                .is_some_and(|c| c.is_true() && c.observed_generation == ws.metadata.generation);
        if !shown {
            let ready = condition(READY, true, "Available", "", None, &ws);
            patch_status(
                &api,
                &ws,
                json!({ "conditions": [ready, synced_success(&ws)] }),
            )
            .await?;
        }
        shared
            .observations
            .lock()
            .unwrap()
            .applied_generation
            .insert(uid, ws.metadata.generation);
        // The provider plans again every poll; without scaled time, the tests' poll is short
        // while an observe failure is injected, and otherwise off (a plan without changes
        // writes nothing).
        return Ok(match shared.timing {
            Some(t) => Action::requeue(t.poll_after(&uid_of(&ws))),
            None if shared.polling() => Action::requeue(Duration::from_millis(200)),
            None => Action::await_change(),
        });
    }
    let verb = if exists { "update" } else { "create" };
    if let Some(message) = injected {
        return fail(&api, &shared, &ws, &action_error(verb, &message)).await;
    }
    // Before a create, the pending annotation is written in an update of its own.
    if !exists && !ws.annotations().contains_key(EXTERNAL_CREATE_PENDING) {
        put_annotation(&api, &ws, EXTERNAL_CREATE_PENDING, rfc3339_now()).await?;
        return Ok(Action::await_change());
    }
    shared.plan().await;
    match shared.serial_step(&ws, module, false, began).await {
        Step::Refused(message) => {
            return fail(&api, &shared, &ws, &action_error(verb, &message)).await;
        }
        Step::TimedOut => return fail(&api, &shared, &ws, &killed(verb)).await,
        // The real provider's `terraform apply` is synchronous: nothing is written while it
        // runs.
        Step::Wait(remaining) => return Ok(Action::requeue(remaining)),
        Step::Done => {}
    }
    *shared
        .observations
        .lock()
        .unwrap()
        .applies
        .entry(name)
        .or_default() += 1;
    let outputs = public_outputs(&shared, &ws, module);
    if !exists {
        // A create: the succeeded annotation in an update of its own, then Creating with the
        // reconcile's success; Available comes with the next observation.
        // The update's answer is the object at its new version, as crossplane-runtime's
        // client leaves it in the managed resource for the status update that follows.
        let latest = put_annotation(&api, &ws, EXTERNAL_CREATE_SUCCEEDED, rfc3339_now()).await?;
        {
            let mut obs = shared.observations.lock().unwrap();
            obs.applied_generation.insert(uid, ws.metadata.generation);
            obs.states.insert(key, configured);
            obs.create_order.push(ws.name_any());
        }
        let creating = condition(
            READY,
            false,
            "Creating",
            "",
            latest.metadata.generation,
            &latest,
        );
        patch_status(
            &api,
            &latest,
            json!({ "atProvider": { "outputs": outputs, "checksum": "sim" }, "conditions": [creating, synced_success(&latest)] }),
        )
        .await?;
        // `Requeue: true`: observed again after the rate limiter's delay.
        return Ok(shared.rate_limited(&latest, Requeue::Created));
    }
    // An update: outputs, Available, and the reconcile's success for this generation.
    if let Err(e) = publish_connection(&shared, &ws, module, true).await {
        return fail(&api, &shared, &ws, &e).await;
    }
    let ready = condition(READY, true, "Available", "", None, &ws);
    patch_status(
        &api,
        &ws,
        json!({ "atProvider": { "outputs": outputs, "checksum": "sim" }, "conditions": [ready, synced_success(&ws)] }),
    )
    .await?;
    let mut obs = shared.observations.lock().unwrap();
    obs.applied_generation.insert(uid, ws.metadata.generation);
    obs.states.insert(key, configured);
    Ok(Action::await_change())
}

/// The Terraform workspace a Workspace's state lives in: its external name, else its name.
fn state_key(ws: &Workspace) -> String {
    ws.annotations()
        .get(EXTERNAL_NAME)
        .cloned()
        .unwrap_or_else(|| ws.name_any())
}

/// What `terraform plan` compares with the state: the Workspace's spec but for the policies
/// that only tell crossplane-runtime what to do with it (`deletionPolicy`,
/// `managementPolicies`), hashed.
fn configuration(ws: &Workspace) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut spec = serde_json::to_value(&ws.spec).unwrap_or_default();
    if let Some(m) = spec.as_object_mut() {
        m.remove("deletionPolicy");
        m.remove("managementPolicies");
    }
    let mut hasher = DefaultHasher::new();
    spec.to_string().hash(&mut hasher);
    hasher.finish()
}

/// `Synced=True/ReconcileSuccess` for the Workspace's generation, as the managed reconciler
/// writes it.
fn synced_success(ws: &Workspace) -> Value {
    condition(
        "Synced",
        true,
        "ReconcileSuccess",
        "",
        ws.metadata.generation,
        ws,
    )
}

/// The non-sensitive outputs, as `status.atProvider.outputs`.
fn public_outputs(
    shared: &Shared,
    ws: &Workspace,
    module: &Module,
) -> serde_json::Map<String, Value> {
    module
        .outputs
        .iter()
        .filter(|(_, sensitive)| !**sensitive)
        .map(|(output, _)| (output.clone(), output_value(shared, ws, output)))
        .collect()
}

/// Publishes the connection details as crossplane-runtime's API publisher does: the Secret is
/// created controller-owned by the Workspace (so it is garbage-collected after it), or
/// merge-patched when it is the Workspace's (or an unowned connection Secret, which is
/// adopted); any other existing Secret is refused. `applied`: whether the state has outputs.
async fn publish_connection(
    shared: &Shared,
    ws: &Workspace,
    module: &Module,
    applied: bool,
) -> Result<(), String> {
    let Some(r) = &ws.spec.write_connection_secret_to_ref else {
        return Ok(());
    };
    let mut data = BTreeMap::new();
    if applied {
        for output in module.outputs.keys() {
            let bytes = match output_value(shared, ws, output) {
                Value::String(s) => s.into_bytes(),
                other => other.to_string().into_bytes(),
            };
            data.insert(output.clone(), ByteString(bytes));
        }
    }
    let wrap = |e: kube::Error| format!("cannot publish connection details: {e}");
    let secrets = Api::<Secret>::namespaced(shared.client.clone(), &r.namespace);
    let uid = ws.uid().unwrap_or_default();
    let owner = k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "tf.upbound.io/v1beta1".into(),
        kind: "Workspace".into(),
        name: ws.name_any(),
        uid: uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let cached = shared
        .secrets
        .get(&reflector::ObjectRef::new(&r.name).within(&r.namespace));
    let current = match cached {
        Some(s) => Some(s.as_ref().clone()),
        None => secrets.get_opt(&r.name).await.map_err(wrap)?,
    };
    let Some(current) = current else {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(r.name.clone()),
                namespace: Some(r.namespace.clone()),
                owner_references: Some(vec![owner]),
                ..Default::default()
            },
            type_: Some(CONNECTION_SECRET_TYPE.into()),
            data: Some(data),
            ..Default::default()
        };
        return match secrets.create(&post_params(), &secret).await {
            // The cache was behind; the next reconcile sees it.
            Err(kube::Error::Api(s)) if s.is_already_exists() => {
                Err("cannot publish connection details: the Secret appeared".into())
            }
            other => other.map(|_| ()).map_err(wrap),
        };
    };
    let controller = current
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true));
    match controller {
        None if current.type_.as_deref() != Some(CONNECTION_SECRET_TYPE) => {
            return Err(
                "cannot publish connection details: refusing to modify uncontrolled secret".into(),
            );
        }
        Some(c) if c.uid != uid => {
            return Err(format!(
                "cannot publish connection details: existing secret is not controlled by UID {uid:?}"
            ));
        }
        _ => {}
    }
    let old = current.data.clone().unwrap_or_default();
    let unchanged = data.iter().all(|(k, v)| old.get(k) == Some(v)) && controller.is_some();
    if unchanged {
        return Ok(());
    }
    let patch = json!({
        "metadata": { "ownerReferences": [owner] },
        "data": data,
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    secrets
        .patch(&r.name, &params, &Patch::Merge(&patch))
        .await
        .map_err(wrap)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELAY: Duration = Duration::from_millis(300);

    fn asker<'a>(workspace: &'a str, default_profiles: bool) -> Asker<'a> {
        Asker {
            cluster: "demo-cluster",
            workspace,
            uid: workspace,
            state: workspace,
            default_profiles,
        }
    }

    fn profiles(names: &[&str]) -> BTreeMap<String, Value> {
        names
            .iter()
            .map(|n| (n.to_string(), json!({ "selectors": [{ "namespace": n }] })))
            .collect()
    }

    #[test]
    fn operations_one_after_the_other_do_not_overlap() {
        let mut obs = Observations::default();
        let t0 = obs.epoch;
        let eks = asker("eks", true);
        let defaults = profiles(&["kube-system", "karpenter"]);
        assert_eq!(
            obs.step(&eks, &defaults, false, DELAY, t0),
            Step::Wait(DELAY)
        );
        // Its second default profile waits for its first, as the AWS provider's lock does.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(
            obs.step(&eks, &defaults, false, DELAY, t1),
            Step::Wait(Duration::from_millis(200))
        );
        let t2 = t0 + DELAY;
        assert_eq!(
            obs.step(&eks, &defaults, false, DELAY, t2),
            Step::Wait(DELAY)
        );
        let t3 = t2 + DELAY;
        assert_eq!(obs.step(&eks, &defaults, false, DELAY, t3), Step::Done);
        let monitoring = asker("monitoring", false);
        assert_eq!(
            obs.step(&monitoring, &profiles(&["monitoring"]), false, DELAY, t3),
            Step::Wait(DELAY)
        );
        let t4 = t3 + DELAY;
        assert_eq!(
            obs.step(&monitoring, &BTreeMap::new(), true, DELAY, t4),
            Step::Wait(DELAY)
        );
        assert_eq!(obs.overlaps(), Vec::<String>::new());
        use OperationKind::*;
        assert_eq!(
            obs.accepted(),
            [
                (Create, "karpenter".to_string(), true),
                (Create, "kube-system".to_string(), true),
                (Create, "monitoring".to_string(), false),
                (Delete, "monitoring".to_string(), false),
            ]
        );
    }

    #[test]
    fn two_workspaces_at_once_are_refused_and_recorded() {
        let mut obs = Observations::default();
        let t0 = obs.epoch;
        obs.step(&asker("ws-a", false), &profiles(&["a"]), false, DELAY, t0);
        let step = obs.step(
            &asker("ws-b", false),
            &profiles(&["b"]),
            false,
            DELAY,
            t0 + Duration::from_millis(10),
        );
        assert_eq!(
            step,
            Step::Refused(
                "ResourceInUseException: Cannot create Fargate Profile b because cluster demo-cluster currently has Fargate profile a in status CREATING".into()
            )
        );
        let overlaps = obs.overlaps();
        assert_eq!(overlaps.len(), 1, "{overlaps:?}");
        assert!(
            overlaps[0].contains("create of profile b by Workspace ws-b")
                && overlaps[0].contains("create of profile a by Workspace ws-a"),
            "{overlaps:?}"
        );
        // Another cluster is not affected.
        let other = Asker {
            cluster: "other",
            ..asker("ws-c", false)
        };
        let step = obs.step(
            &other,
            &profiles(&["c"]),
            false,
            DELAY,
            t0 + Duration::from_millis(20),
        );
        assert_eq!(step, Step::Wait(DELAY));
        assert_eq!(obs.overlaps().len(), 1);
    }

    #[test]
    fn a_profile_deleted_during_its_own_create_is_refused_and_recorded() {
        let mut obs = Observations::default();
        let t0 = obs.epoch;
        let ws = asker("ws-a", false);
        obs.step(&ws, &profiles(&["a"]), false, DELAY, t0);
        let none = BTreeMap::new();
        let step = obs.step(&ws, &none, true, DELAY, t0 + Duration::from_millis(50));
        assert!(
            matches!(step, Step::Refused(ref m) if m.contains("Cannot delete Fargate Profile a")),
            "{step:?}"
        );
        let overlaps = obs.overlaps();
        assert!(
            overlaps.len() == 1
                && overlaps[0].contains("delete of profile a")
                && overlaps[0].contains("create of profile a"),
            "{overlaps:?}"
        );
        // Once the create has ended, the delete goes ahead.
        assert_eq!(
            obs.step(&ws, &none, true, DELAY, t0 + DELAY),
            Step::Wait(DELAY)
        );
    }

    #[test]
    fn default_profiles_changed_while_another_profile_is_created_are_refused_and_recorded() {
        let mut obs = Observations::default();
        let t0 = obs.epoch;
        let eks = asker("eks", true);
        obs.step(&eks, &profiles(&["kube-system"]), false, Duration::ZERO, t0);
        obs.step(&asker("ws-a", false), &profiles(&["a"]), false, DELAY, t0);
        let step = obs.step(
            &eks,
            &profiles(&["kube-system", "karpenter"]),
            false,
            DELAY,
            t0 + Duration::from_millis(10),
        );
        assert!(matches!(step, Step::Refused(_)), "{step:?}");
        let overlaps = obs.overlaps();
        assert!(
            overlaps.len() == 1 && overlaps[0].contains("create of default profile karpenter"),
            "{overlaps:?}"
        );
        // A changed selector replaces the default profile: delete, then create.
        let mut changed = profiles(&["kube-system"]);
        changed.insert(
            "kube-system".into(),
            json!({ "selectors": [{ "namespace": "other" }] }),
        );
        let t1 = t0 + DELAY;
        assert_eq!(
            obs.step(&eks, &changed, false, DELAY, t1),
            Step::Wait(DELAY)
        );
        assert_eq!(
            obs.step(&eks, &changed, false, DELAY, t1 + DELAY),
            Step::Wait(DELAY)
        );
        let last: Vec<_> = obs.accepted().into_iter().rev().take(2).collect();
        assert_eq!(
            last,
            [
                (OperationKind::Create, "kube-system".to_string(), true),
                (OperationKind::Delete, "kube-system".to_string(), true),
            ]
        );
    }

    #[test]
    fn an_orphaned_profile_cannot_be_created_again() {
        let mut obs = Observations::default();
        let t0 = obs.epoch;
        obs.orphaned
            .entry("demo-cluster".into())
            .or_default()
            .insert("a".into());
        let step = obs.step(&asker("ws-a2", false), &profiles(&["a"]), false, DELAY, t0);
        assert_eq!(
            step,
            Step::Refused(
                "creating EKS Fargate Profile (demo-cluster:a): ResourceInUseException: Fargate Profile already exists".into()
            )
        );
        assert!(obs.accepted().is_empty());
    }

    #[test]
    fn operations_that_take_no_time_never_overlap() {
        let mut obs = Observations::default();
        let t0 = obs.epoch;
        let eks = asker("eks", true);
        let defaults = profiles(&["kube-system", "karpenter"]);
        assert_eq!(
            obs.step(&eks, &defaults, false, Duration::ZERO, t0),
            Step::Done
        );
        assert_eq!(
            obs.step(
                &asker("ws-a", false),
                &profiles(&["a"]),
                false,
                Duration::ZERO,
                t0
            ),
            Step::Done
        );
        assert_eq!(obs.accepted().len(), 3);
        assert!(obs.overlaps().is_empty(), "{:?}", obs.overlaps());
    }
}
