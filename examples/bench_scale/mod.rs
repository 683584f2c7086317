//! Issue 20's measurements: phases of the bench chosen with `BENCH_PHASES`, a comma list of
//! `faults`, `load` and `growth` (without it the bench runs its default measurements instead).
//! Every rollout here runs in a fresh namespace with a fresh operator process and simulated
//! provider, and its objects are deleted, and gone, before the next starts. The report, written
//! after each phase, goes to `BENCH_OUT` (the `## Analysis` of an existing file is kept).
//! - `faults`: a clean rollout of `BENCH_CONTROL_PLANES` × `BENCH_PROFILES`, then
//!   `BENCH_FAULT_RUNS` (default 1) rollouts during which the operator is SIGKILLed three
//!   times at random moments (and started again after a random 0–2 s) and the API server is
//!   restarted once (`tests/cluster/restart-apiserver` of the bench's private control plane);
//!   seeded by `BENCH_FAULTS_SEED` (printed). Reports convergence, the applies and Workspaces
//!   against the expected ones, the simulated provider's overlapping Fargate operations, the
//!   writes once converged, and the time, requests and CPU each fault run cost against the
//!   clean one.
//! - `load`: the latency of a profile change (as the default bench's latency measurement) on
//!   `BENCH_LOAD_PROBES` (default 10) converged clusters while a rollout of
//!   `BENCH_CONTROL_PLANES` more is in progress, then on the same system idle.
//! - `growth`: for each size of `BENCH_GROWTH` (default `100,200,500,1000`): the scale run,
//!   an operator restart (start-up: first reconcile and all caches filled, from the operator's
//!   `capt_fargate::startup` log lines; the resync; peak RSS) and the floor.

use super::*;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Log files `target/bench/operator-<n>.log` of this module's processes start here.
static INSTANCE: AtomicUsize = AtomicUsize::new(100);
/// The window after convergence in which a converged system must make no writes.
const QUIET_WINDOW: Duration = Duration::from_secs(10);
/// Operator kills per fault run.
const KILLS: usize = 3;

/// Which phases run.
pub struct Phases {
    /// Fault runs (0: no fault phase).
    faults: usize,
    load: bool,
    /// Fleet sizes of the growth table (empty: no growth phase).
    growth: Vec<usize>,
}

impl Phases {
    /// From `BENCH_PHASES` (None when unset), `BENCH_FAULT_RUNS` and `BENCH_GROWTH`.
    pub fn from_env() -> Result<Option<Phases>> {
        let Ok(list) = std::env::var("BENCH_PHASES") else {
            return Ok(None);
        };
        let mut phases = Phases {
            faults: 0,
            load: false,
            growth: Vec::new(),
        };
        for phase in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match phase {
                "faults" => phases.faults = env_usize("BENCH_FAULT_RUNS", 1).max(1),
                "load" => phases.load = true,
                "growth" => {
                    let sizes =
                        std::env::var("BENCH_GROWTH").unwrap_or_else(|_| "100,200,500,1000".into());
                    phases.growth = sizes
                        .split(',')
                        .map(|n| n.trim().parse::<usize>())
                        .collect::<Result<_, _>>()
                        .with_context(|| format!("BENCH_GROWTH={sizes}: a comma list of sizes"))?;
                }
                other => bail!("BENCH_PHASES: unknown phase {other:?} (faults, load, growth)"),
            }
        }
        Ok(Some(phases))
    }
}

/// Runs the chosen phases and writes the report after each.
pub async fn run(
    settings: &Settings,
    client: &Client,
    machine: &Machine,
    phases: &Phases,
) -> Result<()> {
    let mut md = header(settings, machine);
    if phases.faults > 0 {
        let seed = std::env::var("BENCH_FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        println!("bench: faults (seed {seed}; BENCH_FAULTS_SEED={seed} replays the plan)");
        let result = faults(settings, client, phases.faults, seed).await?;
        md.push_str(&result.markdown(settings));
        save(settings, &md)?;
    }
    if phases.load {
        println!("bench: latency under load");
        let result = load_latency(settings, client).await?;
        md.push_str(&result.markdown(settings));
        save(settings, &md)?;
    }
    if !phases.growth.is_empty() {
        let mut rows = Vec::new();
        for &n in &phases.growth {
            println!("bench: growth, {n} control planes");
            rows.push(growth_row(&settings.with_control_planes(n), client).await?);
            md_growth(&mut md, settings, &rows, phases.growth.len());
            save(settings, &md)?;
        }
    }
    println!("bench: done; load {}", load_now());
    Ok(())
}

fn save(settings: &Settings, md: &str) -> Result<()> {
    let text = format!("{md}Load average at the end: {}.\n\n", load_now());
    write_benchmarks(&settings.out, &text)?;
    println!("bench: wrote {}", settings.out.display());
    Ok(())
}

impl Settings {
    /// The same settings for a fleet of `n` control planes.
    fn with_control_planes(&self, n: usize) -> Settings {
        Settings {
            control_planes: n,
            profiles: self.profiles,
            rounds: self.rounds,
            operator_bin: self.operator_bin.clone(),
            kubeconfig: self.kubeconfig.clone(),
            out: self.out.clone(),
            mode: self.mode,
            latency_samples: self.latency_samples,
            floor_concurrency: self.floor_concurrency,
            floor_curve: self.floor_curve.clone(),
        }
    }
}

fn header(s: &Settings, m: &Machine) -> String {
    format!(
        "# Benchmarks: scale, faults and latency under load\n\nGenerated by `tests/bench` with `BENCH_PHASES` (`examples/bench_scale/mod.rs`): the operator as a child process (`capt-fargate run --leader-election=false`, one namespace), the simulated provider-terraform in the bench process answering at once, on {}.\n\n| | |\n|---|---|\n| Date | {} |\n| Commit | {} |\n| CPUs (`nproc`) | {} |\n| Load average at start | {} |\n| Additional profiles each | {} ({} per control plane with the 2 default ones) |\n\n",
        m.cluster,
        m.date,
        m.commit,
        m.nproc,
        m.load,
        s.profiles,
        s.total_profiles()
    )
}

fn next_instance() -> usize {
    INSTANCE.fetch_add(1, Ordering::Relaxed)
}

/// API server CPU seconds of its current process.
fn api_cpu(kubeconfig: &Path) -> f64 {
    cluster_pid(kubeconfig, "kube-apiserver")
        .map(cpu_seconds)
        .unwrap_or(0.0)
}

fn plus(a: &Requests, b: &Requests) -> Requests {
    let mut out = a.0.clone();
    for (k, v) in &b.0 {
        *out.entry(k.clone()).or_insert(0.0) += v;
    }
    let mut seconds = a.1.clone();
    for (k, v) in &b.1 {
        *seconds.entry(k.clone()).or_insert(0.0) += v;
    }
    Requests(out, seconds)
}

/// Applies clusters `range` (each its CAPTCluster, then its control plane), 32 in flight.
async fn apply_clusters(
    settings: &Settings,
    client: &Client,
    ns: &str,
    range: std::ops::Range<usize>,
) -> Result<()> {
    let api: Api<CAPTControlPlane> = Api::namespaced(client.clone(), ns);
    let infra: Api<CAPTCluster> = Api::namespaced(client.clone(), ns);
    let tags = initial_tags(settings);
    for_each_concurrent(range, APPLY_CONCURRENCY, |i| {
        let (api, cp) = (api.clone(), control_plane(ns, i, &tags));
        let (infra, c) = (infra.clone(), capt_cluster(ns, i));
        async move {
            let apply = PatchParams::apply(MANAGER);
            infra
                .patch(&c.name_any(), &apply, &Patch::Apply(&c))
                .await?;
            api.patch(&cp.name_any(), &apply, &Patch::Apply(&cp))
                .await?;
            Ok(())
        }
    })
    .await
}

/// Whether clusters `range` have converged: every control plane `total/total` and every
/// CAPTCluster ready, for their current generations.
fn clusters_converged(w: &Watch, ns: &str, range: std::ops::Range<usize>, total: usize) -> bool {
    range.into_iter().all(|i| {
        let name = control_plane_name(i);
        let cp = w.cps.get(&ObjectRef::new(&name).within(ns));
        let c = w.capt_clusters.get(&ObjectRef::new(&name).within(ns));
        cp.is_some_and(|cp| converged(&cp, total)) && c.is_some_and(|c| capt_cluster_ready(&c))
    })
}

/// A retry delay that does not grow: the bench's own watches must see the end of a rollout
/// at once after an API server restart (kube's default backoff waits up to 30 s).
struct Steady(Duration);

impl Iterator for Steady {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        Some(self.0)
    }
}

impl kube::runtime::utils::Backoff for Steady {
    fn reset(&mut self) {}
}

/// [`Watch::control_planes`] with watches that retry every 200 ms.
fn steady_watch(client: &Client, ns: &str) -> Watch {
    let changed = Arc::new(Notify::new());
    let drive = |stream: futures::stream::BoxStream<'static, Result<(), watcher::Error>>| {
        let changed = changed.clone();
        tokio::spawn(stream.for_each(move |_| {
            changed.notify_waiters();
            async {}
        }))
    };
    let (cps, writer) = reflector::store();
    let cp_stream = reflector::reflector(
        writer,
        watcher(
            Api::<CAPTControlPlane>::namespaced(client.clone(), ns),
            watcher::Config::default(),
        ),
    )
    .backoff(Steady(Duration::from_millis(200)))
    .map_ok(|_| ())
    .boxed();
    let (capt_clusters, writer) = reflector::store();
    let infra_stream = reflector::reflector(
        writer,
        watcher(
            Api::<CAPTCluster>::namespaced(client.clone(), ns),
            watcher::Config::default(),
        ),
    )
    .backoff(Steady(Duration::from_millis(200)))
    .map_ok(|_| ())
    .boxed();
    let tasks = vec![drive(cp_stream), drive(infra_stream)];
    Watch {
        cps,
        capt_clusters,
        workspaces: None,
        changed,
        tasks,
    }
}

// ---------------------------------------------------------------------------------------------
// Start-up, from the operator's log

/// When a process reached its start-up milestones, in seconds after it was spawned.
#[derive(Default, Clone)]
struct Startup {
    first_reconcile: Option<f64>,
    caches_filled: Option<f64>,
    caches: usize,
}

impl Startup {
    fn describe(&self) -> String {
        let s = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2} s"));
        format!(
            "first reconcile {}, all {} caches filled {}",
            s(self.first_reconcile),
            self.caches,
            s(self.caches_filled)
        )
    }
}

impl OperatorProcess {
    /// The start-up milestones of this process, from the `capt_fargate::startup` lines of its
    /// log (text format: the timestamp first), measured from its spawn.
    fn startup(&self) -> Startup {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        Startup::parse(&text, self.spawned)
    }

    /// SIGKILL, and reap it.
    fn sigkill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Startup {
    fn parse(log: &str, spawned: std::time::SystemTime) -> Startup {
        use k8s_openapi::jiff::Timestamp;
        let Ok(spawned) = Timestamp::try_from(spawned) else {
            return Startup::default();
        };
        let mut out = Startup::default();
        for line in log
            .lines()
            .filter(|l| l.contains(capt_fargate::runtime::startup::TARGET))
        {
            let Some(at) = line
                .split_whitespace()
                .next()
                .and_then(|t| t.parse::<Timestamp>().ok())
            else {
                continue;
            };
            let seconds = (at.as_nanosecond() - spawned.as_nanosecond()) as f64 / 1e9;
            if line.contains("first reconcile") && out.first_reconcile.is_none() {
                out.first_reconcile = Some(seconds);
            } else if line.contains("all caches filled") && out.caches_filled.is_none() {
                out.caches_filled = Some(seconds);
                out.caches = line
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix("caches="))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Census: the applies and Workspaces against the expected ones

/// The applies and Workspaces of a namespace against what its clusters should have.
#[derive(Default)]
struct Census {
    expected: usize,
    applies: usize,
    /// Applies that no cluster should have (a duplicate or a stray), and expected ones absent.
    unexpected_applies: usize,
    missing_applies: usize,
    workspaces: usize,
    /// Workspaces beyond the first of one apply.
    duplicate_workspaces: usize,
    /// Workspaces whose apply (by name and uid) does not exist.
    orphaned_workspaces: usize,
    /// Applies without a Workspace.
    applies_without_workspace: usize,
}

impl Census {
    async fn take(client: &Client, ns: &str, settings: &Settings) -> Result<Census> {
        let mut expected = std::collections::BTreeSet::new();
        for i in 0..settings.control_planes {
            let cp = control_plane_name(i);
            expected.insert(names::vpc_apply_name(&cp));
            expected.insert(names::eks_apply_name(&cp));
            for j in 0..settings.profiles {
                expected.insert(names::profile_apply_name(&cp, &profile_name(j)));
            }
        }
        let applies = Api::<WorkspaceTemplateApply>::namespaced(client.clone(), ns)
            .list_metadata(&ListParams::default())
            .await?
            .items;
        let selector = format!(
            "{}={}",
            names::LABEL_APPLY_NAMESPACE,
            names::label_value(ns)
        );
        let workspaces = Api::<Workspace>::all(client.clone())
            .list_metadata(&ListParams::default().labels(&selector))
            .await?
            .items;
        let uids: BTreeMap<String, String> = applies
            .iter()
            .map(|a| (a.name_any(), a.uid().unwrap_or_default()))
            .collect();
        let mut per_apply: BTreeMap<String, usize> = BTreeMap::new();
        let mut orphaned = 0;
        for ws in &workspaces {
            let apply = ws
                .annotations()
                .get(names::ANNOTATION_APPLY)
                .and_then(|k| k.strip_prefix(&format!("{ns}/")))
                .unwrap_or_default()
                .to_string();
            let owner_uid = ws.labels().get(names::LABEL_APPLY_UID).cloned();
            if uids
                .get(&apply)
                .is_some_and(|uid| Some(uid) == owner_uid.as_ref())
            {
                *per_apply.entry(apply).or_default() += 1;
            } else {
                orphaned += 1;
            }
        }
        Ok(Census {
            expected: expected.len(),
            applies: applies.len(),
            unexpected_applies: uids.keys().filter(|n| !expected.contains(*n)).count(),
            missing_applies: expected.iter().filter(|n| !uids.contains_key(*n)).count(),
            workspaces: workspaces.len(),
            duplicate_workspaces: per_apply.values().map(|n| n - 1).sum(),
            orphaned_workspaces: orphaned,
            applies_without_workspace: uids.keys().filter(|n| !per_apply.contains_key(*n)).count(),
        })
    }

    fn clean(&self) -> bool {
        self.unexpected_applies == 0
            && self.missing_applies == 0
            && self.duplicate_workspaces == 0
            && self.orphaned_workspaces == 0
            && self.applies_without_workspace == 0
    }
}

// ---------------------------------------------------------------------------------------------
// Faults at scale

/// xorshift64*: the fault plan, reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum FaultKind {
    /// SIGKILL the operator, keep it down this long, start it again.
    Kill { down: Duration },
    /// Restart the API server (SIGKILL, started again at once).
    ApiServerRestart,
}

/// The planned faults, by seconds after the rollout's start: [`KILLS`] kills between 5 % and
/// 75 % of the clean run's time, and one API server restart between 15 % and 60 %.
fn fault_plan(rng: &mut Rng, clean_seconds: f64) -> Vec<(f64, FaultKind)> {
    let mut plan: Vec<(f64, FaultKind)> = (0..KILLS)
        .map(|_| {
            let at = rng.between(0.05, 0.75) * clean_seconds;
            let down = Duration::from_millis(rng.between(0.0, 2000.0) as u64);
            (at, FaultKind::Kill { down })
        })
        .collect();
    plan.push((
        rng.between(0.15, 0.6) * clean_seconds,
        FaultKind::ApiServerRestart,
    ));
    plan.sort_by(|a, b| a.0.total_cmp(&b.0));
    plan
}

/// A fault as it happened.
struct FaultRecord {
    /// Seconds after the rollout's start.
    at: f64,
    what: String,
}

/// One rollout, clean or with faults.
struct FaultRun {
    label: String,
    /// None: it did not converge within the timeout.
    seconds: Option<f64>,
    requests: Requests,
    api_cpu: f64,
    /// CPU seconds of every operator process of the run together.
    operator_cpu: f64,
    peak_rss_kib: u64,
    faults: Vec<FaultRecord>,
    /// Planned faults not injected because the rollout had converged before their time.
    skipped: usize,
    census: Census,
    overlaps: Vec<String>,
    rejections: usize,
    /// Writes (captclusters, control planes, applies, Workspaces, Secrets) in
    /// [`QUIET_WINDOW`] once converged.
    quiet_writes: f64,
    load: String,
}

/// Requests and API server CPU over a run in which the API server may restart (its counters
/// start again at zero).
struct Meter {
    kubeconfig: PathBuf,
    base: Requests,
    counted: Requests,
    base_cpu: f64,
    counted_cpu: f64,
}

impl Meter {
    async fn start(client: &Client, kubeconfig: &Path) -> Result<Meter> {
        Ok(Meter {
            kubeconfig: kubeconfig.to_path_buf(),
            base: Requests::scrape(client).await?,
            counted: Requests::default(),
            base_cpu: api_cpu(kubeconfig),
            counted_cpu: 0.0,
        })
    }

    /// Just before the API server goes away: counts what it served so far.
    async fn before_restart(&mut self, client: &Client) -> Result<()> {
        let now = Requests::scrape(client).await?;
        self.counted = plus(&self.counted, &now.minus(&self.base));
        self.counted_cpu += api_cpu(&self.kubeconfig) - self.base_cpu;
        Ok(())
    }

    /// The new API server counts from zero.
    fn after_restart(&mut self) {
        self.base = Requests::default();
        self.base_cpu = 0.0;
    }

    async fn total(&self, client: &Client) -> Result<(Requests, f64)> {
        let now = Requests::scrape(client).await?;
        Ok((
            plus(&self.counted, &now.minus(&self.base)),
            self.counted_cpu + api_cpu(&self.kubeconfig) - self.base_cpu,
        ))
    }
}

async fn restart_apiserver(kubeconfig: &Path) -> Result<()> {
    // tests/bench copies tests/cluster to <root>/tests/cluster, its state in
    // <root>/target/testcluster (the kubeconfig's directory).
    let root = kubeconfig
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("no control plane root above {}", kubeconfig.display()))?;
    let script = root.join("tests/cluster/restart-apiserver");
    anyhow::ensure!(script.exists(), "{} not found", script.display());
    let out = tokio::task::spawn_blocking(move || Command::new(&script).output()).await??;
    anyhow::ensure!(
        out.status.success(),
        "restart-apiserver failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The clean run, then `runs` fault runs.
async fn faults(settings: &Settings, client: &Client, runs: usize, seed: u64) -> Result<Faults> {
    anyhow::ensure!(
        std::env::var_os("BENCH_KUBECONFIG").is_some(),
        "the fault phase restarts the API server: it needs the bench's private control plane"
    );
    let mut rng = Rng::new(seed);
    println!("bench:   clean rollout");
    let clean = fault_run(settings, client, "clean", &[], None).await?;
    let clean_seconds = clean
        .seconds
        .ok_or_else(|| anyhow!("the clean rollout did not converge"))?;
    let mut result = Faults {
        seed,
        clean,
        faulted: Vec::new(),
    };
    for run in 1..=runs {
        let plan = fault_plan(&mut rng, clean_seconds);
        // A fleet that has not converged by then is reported as such, with what is stuck.
        let limit = Duration::from_secs_f64(2.0 * clean_seconds + 120.0);
        println!("bench:   fault run {run}: {plan:?}");
        result.faulted.push(
            fault_run(
                settings,
                client,
                &format!("faults {run}"),
                &plan,
                Some(limit),
            )
            .await?,
        );
    }
    Ok(result)
}

/// One rollout in a fresh namespace with `plan`'s faults injected.
async fn fault_run(
    settings: &Settings,
    client: &Client,
    label: &str,
    plan: &[(f64, FaultKind)],
    limit: Option<Duration>,
) -> Result<FaultRun> {
    let ns = support::TestNamespace::new(client, "capt-bench-faults").await;
    let name = ns.name.clone();
    let provider = support::simulated_provider::SimulatedProvider::start_on_own_thread(
        &settings.kubeconfig,
        &name,
        Duration::ZERO,
    );
    let result = fault_run_in(settings, client, &name, label, plan, limit).await;
    let (overlaps, rejections) = (provider.overlaps(), provider.rejections().len());
    provider.stop().await;
    clear(client, &name).await;
    let mut run = result?;
    run.overlaps = overlaps;
    run.rejections = rejections;
    println!(
        "bench:   {label}: {} in {}; census clean: {}; overlaps {}; quiet writes {}",
        if run.seconds.is_some() {
            "converged"
        } else {
            "NOT converged"
        },
        run.seconds.map_or("–".into(), |s| format!("{s:.1}s")),
        run.census.clean(),
        run.overlaps.len(),
        run.quiet_writes
    );
    Ok(run)
}

async fn fault_run_in(
    settings: &Settings,
    client: &Client,
    ns: &str,
    label: &str,
    plan: &[(f64, FaultKind)],
    limit: Option<Duration>,
) -> Result<FaultRun> {
    prepare_inputs(client, ns).await?;
    let watch = steady_watch(client, ns);
    let op = OperatorProcess::start(settings, ns, next_instance()).await?;
    let load = load_now();
    let meter = tokio::sync::Mutex::new(Meter::start(client, &settings.kubeconfig).await?);
    let total = settings.total_profiles();
    let n = settings.control_planes;
    let start = Instant::now();
    let done = AtomicBool::new(false);
    let timeout = limit.unwrap_or(Duration::from_secs(120 + n as u64 * 6));

    let converge = async {
        apply_clusters(settings, client, ns, 0..n).await?;
        let mut last_print = Instant::now();
        let converged = watch
            .until(timeout, |w| {
                if last_print.elapsed() > Duration::from_secs(10) {
                    let cps = w.cps.state();
                    println!(
                        "bench:   {:>5.0}s {}/{n} control planes converged",
                        start.elapsed().as_secs_f64(),
                        cps.iter().filter(|cp| converged(cp, total)).count()
                    );
                    last_print = Instant::now();
                }
                clusters_converged(w, ns, 0..n, total).then_some(())
            })
            .await;
        done.store(true, Ordering::Release);
        Ok::<_, anyhow::Error>(converged.ok().map(|()| start.elapsed().as_secs_f64()))
    };
    let inject = async {
        let mut op = op;
        let (mut records, mut skipped, mut operator_cpu, mut peak) = (Vec::new(), 0, 0.0, 0);
        for (at, kind) in plan {
            let when = start + Duration::from_secs_f64(*at);
            while Instant::now() < when && !done.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if done.load(Ordering::Acquire) {
                skipped += 1;
                continue;
            }
            let at = start.elapsed().as_secs_f64();
            match kind {
                FaultKind::Kill { down } => {
                    operator_cpu += cpu_seconds(op.pid());
                    peak = peak.max(op.vm_hwm_kib());
                    let pid = op.pid();
                    op.sigkill();
                    tokio::time::sleep(*down).await;
                    op = OperatorProcess::start(settings, ns, next_instance()).await?;
                    records.push(FaultRecord {
                        at,
                        what: format!("operator (pid {pid}) SIGKILLed, down {down:?}"),
                    });
                }
                FaultKind::ApiServerRestart => {
                    meter.lock().await.before_restart(client).await?;
                    let t = Instant::now();
                    restart_apiserver(&settings.kubeconfig).await?;
                    meter.lock().await.after_restart();
                    records.push(FaultRecord {
                        at,
                        what: format!(
                            "API server SIGKILLed and started again (ready after {:.1} s)",
                            t.elapsed().as_secs_f64()
                        ),
                    });
                }
            }
            println!("bench:   {at:>5.1}s {}", records.last().unwrap().what);
        }
        Ok::<_, anyhow::Error>((op, records, skipped, operator_cpu, peak))
    };
    let (converged, injected) = futures::join!(converge, inject);
    let (op, faults, skipped, mut operator_cpu, mut peak) = injected?;
    let seconds = converged?;
    let (requests, api_cpu) = meter.lock().await.total(client).await?;
    watch.stop();
    // A converged system makes no writes (the restarted processes included).
    let before = Requests::scrape(client).await?;
    tokio::time::sleep(QUIET_WINDOW).await;
    let quiet_writes = Requests::scrape(client)
        .await?
        .minus(&before)
        .only(RESOURCES)
        .writes();
    operator_cpu += cpu_seconds(op.pid());
    peak = peak.max(op.vm_hwm_kib());
    let census = Census::take(client, ns, settings).await?;
    op.stop().await;
    Ok(FaultRun {
        label: label.to_string(),
        seconds,
        requests,
        api_cpu,
        operator_cpu,
        peak_rss_kib: peak,
        faults,
        skipped,
        census,
        overlaps: Vec::new(),
        rejections: 0,
        quiet_writes,
        load,
    })
}

struct Faults {
    seed: u64,
    clean: FaultRun,
    faulted: Vec<FaultRun>,
}

impl Faults {
    fn markdown(&self, s: &Settings) -> String {
        let mut md = format!(
            "## Faults at scale ({} × {})\n\n",
            s.control_planes, s.profiles
        );
        md.push_str(&format!("A clean rollout of {n} clusters (CAPTCluster and control plane with {p} additional profiles each: {a} applies and Workspaces), then {runs} rollout(s) of the same fleet, each in a fresh namespace with a fresh operator and simulated provider, during which the operator was SIGKILLed {KILLS} times at random moments between 5 % and 75 % of the clean run's time (down 0–2 s, then started again) and the API server (private to the bench) was SIGKILLed and started again once, between 15 % and 60 % (`tests/cluster/restart-apiserver`: etcd keeps every object). Plan seed {seed} (`BENCH_FAULTS_SEED`). Converged: every control plane `{t}/{t}` and every CAPTCluster ready, watched with a 200 ms retry (so a restarted API server does not delay the bench's own view). Requests and API server CPU are summed over both API server processes. Then, per run: the applies against the expected names and the Workspaces against their applies (by the `{ann}` annotation and the owner uid label), the simulated provider's record of overlapping Fargate profile operations on one cluster and of ResourceInUseException refusals, and the writes in the {q} s after convergence.\n\n",
            n = s.control_planes, p = s.profiles, a = s.control_planes * (s.profiles + 2), runs = self.faulted.len(), seed = self.seed, t = s.total_profiles(), ann = names::ANNOTATION_APPLY, q = QUIET_WINDOW.as_secs()));
        let clean_seconds = self.clean.seconds.unwrap_or(f64::NAN);
        md.push_str("| Run | Converged | Time | Extra time | Requests | Extra requests | Writes | API server CPU | Operator CPU (all processes) | Peak RSS (max of processes) | Applies: expected / found / unexpected / missing | Workspaces: found / duplicate / orphaned / apply without one | Overlapping Fargate operations | Refusals | Writes in the 10 s after | Load at start |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for r in std::iter::once(&self.clean).chain(&self.faulted) {
            let c = &r.census;
            let extra_time = r.seconds.map_or("–".into(), |t| {
                format!(
                    "{:+.1} s ({:+.0} %)",
                    t - clean_seconds,
                    100.0 * (t / clean_seconds - 1.0)
                )
            });
            let extra_req = r.requests.total() - self.clean.requests.total();
            md.push_str(&format!(
                "| {} | {} | {} | {} | {:.0} | {:+.0} ({:+.1} %) | {:.0} | {:.1} s | {:.1} s | {} | {} / {} / {} / {} | {} / {} / {} / {} | {} | {} | {:.0} | {} |\n",
                r.label,
                if r.seconds.is_some() { "yes" } else { "**no**" },
                r.seconds.map_or("–".into(), |t| format!("{t:.1} s")),
                if std::ptr::eq(r, &self.clean) { "".into() } else { extra_time },
                r.requests.total(),
                extra_req,
                100.0 * extra_req / self.clean.requests.total().max(1.0),
                r.requests.writes(),
                r.api_cpu,
                r.operator_cpu,
                mib(r.peak_rss_kib),
                c.expected, c.applies, c.unexpected_applies, c.missing_applies,
                c.workspaces, c.duplicate_workspaces, c.orphaned_workspaces, c.applies_without_workspace,
                r.overlaps.len(),
                r.rejections,
                r.quiet_writes,
                r.load,
            ));
        }
        md.push('\n');
        for r in &self.faulted {
            md.push_str(&format!(
                "Faults of run \"{}\" (seconds after the first apply):\n\n",
                r.label
            ));
            for f in &r.faults {
                md.push_str(&format!("- {:.1} s: {}\n", f.at, f.what));
            }
            if r.skipped > 0 {
                md.push_str(&format!("- {} planned fault(s) not injected: the rollout had converged before their time\n", r.skipped));
            }
            for o in r.overlaps.iter().take(5) {
                md.push_str(&format!("- overlap: {o}\n"));
            }
            md.push('\n');
            let diff = largest_differences(&r.requests, &self.clean.requests);
            md.push_str("Where the extra requests went (fault run minus clean run, the ten largest differences):\n\n| Request | Difference |\n|---|---|\n");
            for (k, d) in diff.iter().take(10) {
                md.push_str(&format!("| {k} | {d:+.0} |\n"));
            }
            md.push('\n');
        }
        md
    }
}

/// `a`'s requests minus `b`'s by request (verb and resource), largest difference first.
fn largest_differences(a: &Requests, b: &Requests) -> Vec<(String, f64)> {
    differences(&a.by_request(), &b.by_request(), 1.0)
}

/// The API server's seconds of `a` minus those of `b` per kind of request, largest first.
fn largest_second_differences(a: &Requests, b: &Requests) -> Vec<(String, f64)> {
    differences(a.seconds_by_request(), b.seconds_by_request(), 0.1)
}

/// `a` minus `b` per key, those of at least `least` either way, largest first.
fn differences(
    a: &BTreeMap<String, f64>,
    b: &BTreeMap<String, f64>,
    least: f64,
) -> Vec<(String, f64)> {
    let mut diff: Vec<(String, f64)> = a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|k| {
            let count = |m: &BTreeMap<String, f64>| m.get(k).copied().unwrap_or(0.0);
            (k.clone(), count(a) - count(b))
        })
        .filter(|(_, d)| d.abs() >= least)
        .collect();
    diff.sort_by(|x, y| y.1.abs().total_cmp(&x.1.abs()));
    diff
}

// ---------------------------------------------------------------------------------------------
// Latency under load

struct LoadLatency {
    probes: usize,
    /// The rollout's time, the probes' changes interleaved.
    rollout_seconds: f64,
    /// Samples that ended while the rollout was in progress.
    under_load: LatencyResult,
    /// Samples that started during the rollout and ended after it converged.
    straddling: usize,
    idle: LatencyResult,
    load_start: String,
    load_end_of_rollout: String,
}

async fn load_latency(settings: &Settings, client: &Client) -> Result<LoadLatency> {
    anyhow::ensure!(
        settings.profiles > 0,
        "the latency needs additional profiles"
    );
    let ns = support::TestNamespace::new(client, "capt-bench-load").await;
    let name = ns.name.clone();
    let provider = support::simulated_provider::SimulatedProvider::start_on_own_thread(
        &settings.kubeconfig,
        &name,
        Duration::ZERO,
    );
    let result = load_latency_in(settings, client, &name).await;
    provider.stop().await;
    clear(client, &name).await;
    result
}

async fn load_latency_in(settings: &Settings, client: &Client, ns: &str) -> Result<LoadLatency> {
    let probes = env_usize("BENCH_LOAD_PROBES", 10).max(1);
    let n = settings.control_planes;
    let total = settings.total_profiles();
    prepare_inputs(client, ns).await?;
    let op = OperatorProcess::start(settings, ns, next_instance()).await?;
    let measured = async {
        let watch = Watch::control_planes(client, ns).with_workspaces(client, ns);
        let api: Api<CAPTControlPlane> = Api::namespaced(client.clone(), ns);
        // The probes (clusters n..n+probes), converged first, untimed.
        apply_clusters(settings, client, ns, n..n + probes).await?;
        let wait = Duration::from_secs(120 + probes as u64 * 6);
        watch
            .until(wait, |w| {
                let ws = w.workspaces.as_ref().unwrap().state().len();
                (clusters_converged(w, ns, n..n + probes, total)
                    && ws == probes * (settings.profiles + 2))
                    .then_some(())
            })
            .await
            .context("load: the probe clusters did not converge")?;
        let mut tags: Vec<Vec<String>> = vec![initial_tags(settings); probes];
        let load_start = load_now();
        let start = Instant::now();
        let done = AtomicBool::new(false);
        let rollout = async {
            apply_clusters(settings, client, ns, 0..n).await?;
            watch
                .until(Duration::from_secs(120 + n as u64 * 6), |w| {
                    clusters_converged(w, ns, 0..n, total).then_some(())
                })
                .await
                .context("load: the rollout did not converge")?;
            done.store(true, Ordering::Release);
            Ok::<_, anyhow::Error>((start.elapsed().as_secs_f64(), load_now()))
        };
        let sample_wait = Duration::from_secs(120);
        let sampling = async {
            let (mut under_load, mut straddling) = (LatencyResult::default(), 0);
            let mut sample = 0;
            // Let the rollout's applies start first.
            tokio::time::sleep(Duration::from_millis(500)).await;
            while !done.load(Ordering::Acquire) {
                let (i, j) = (sample % probes, (sample / probes) % settings.profiles);
                tags[i][j] = format!("load{sample}");
                let ms = time_profile_change(&watch, &api, ns, n + i, j, &tags[i], total, sample_wait)
                    .await
                    .with_context(|| format!("load sample {sample}"))?;
                if done.load(Ordering::Acquire) {
                    straddling += 1;
                } else {
                    under_load.samples.push(ms);
                }
                sample += 1;
            }
            Ok::<_, anyhow::Error>((under_load, straddling, sample))
        };
        let (rolled, sampled) = futures::join!(rollout, sampling);
        let ((rollout_seconds, load_end_of_rollout), (under_load, straddling, mut sample)) =
            (rolled?, sampled?);
        println!(
            "bench:   rollout {rollout_seconds:.1}s; {} samples under load: p50 {:.0} ms, p99 {:.0} ms",
            under_load.samples.len(),
            under_load.percentile(50.0),
            under_load.percentile(99.0)
        );
        let mut idle = LatencyResult::default();
        for _ in 0..settings.latency_samples {
            let (i, j) = (sample % probes, (sample / probes) % settings.profiles);
            tags[i][j] = format!("idle{sample}");
            idle.samples.push(
                time_profile_change(&watch, &api, ns, n + i, j, &tags[i], total, sample_wait)
                    .await
                    .with_context(|| format!("idle sample {sample}"))?,
            );
            sample += 1;
        }
        println!(
            "bench:   idle: p50 {:.0} ms, p99 {:.0} ms",
            idle.percentile(50.0),
            idle.percentile(99.0)
        );
        watch.stop();
        Ok(LoadLatency {
            probes,
            rollout_seconds,
            under_load,
            straddling,
            idle,
            load_start,
            load_end_of_rollout,
        })
    }
    .await;
    op.stop().await;
    measured
}

impl LoadLatency {
    fn markdown(&self, s: &Settings) -> String {
        let mut md = format!(
            "## Latency of a profile change under load ({} × {})\n\n",
            s.control_planes, s.profiles
        );
        md.push_str(&format!("{probes} probe clusters are rolled out and converged first; then {n} more clusters are applied at once and, while that rollout is in progress, one probe's profile after another gets a new `tags` value, timed as in the idle latency measurement (until the profile's Workspace has the new tag and is Ready for its new generation and the control plane reports `{t}/{t}` for its new generation), one change at a time, until the rollout has converged ({rs:.1} s, the changes interleaved; load {ls} at its start, {le} at its end). Samples that ended after the rollout converged ({st}) are left out. Then {idle} more changes on the same, now idle, system.\n\n",
            probes = self.probes, n = s.control_planes, t = s.total_profiles(), rs = self.rollout_seconds, ls = self.load_start, le = self.load_end_of_rollout, st = self.straddling, idle = self.idle.samples.len()));
        md.push_str("| | Samples | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|\n");
        for (label, l) in [
            ("during the rollout", &self.under_load),
            ("idle, after it", &self.idle),
        ] {
            md.push_str(&format!(
                "| {label} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |\n",
                l.samples.len(),
                l.percentile(50.0),
                l.percentile(90.0),
                l.percentile(99.0),
                l.percentile(100.0)
            ));
        }
        md.push('\n');
        md
    }
}

// ---------------------------------------------------------------------------------------------
// Growth

struct GrowthRow {
    control_planes: usize,
    scale: ScaleResult,
    floor: FloorResult,
    /// The floor's other points of `BENCH_FLOOR_CURVE` (the fastest is `floor`).
    floor_curve: Vec<FloorResult>,
    /// The restarted process: start-up, resync and memory.
    startup: Startup,
    resync_seconds: f64,
    resync_writes: f64,
    resync_requests: f64,
    memory_after_resync_kib: u64,
}

async fn growth_row(settings: &Settings, client: &Client) -> Result<GrowthRow> {
    let ns = support::TestNamespace::new(client, "capt-bench-growth").await;
    let name = ns.name.clone();
    let provider = support::simulated_provider::SimulatedProvider::start_on_own_thread(
        &settings.kubeconfig,
        &name,
        Duration::ZERO,
    );
    let measured = async {
        prepare_inputs(client, &name).await?;
        let op = OperatorProcess::start(settings, &name, next_instance()).await?;
        let scale = scale(settings, client, &name, &op).await;
        op.stop().await;
        let scale = scale?;
        // Restart: a fresh process lists everything and reconciles it.
        let before = Requests::scrape(client).await?;
        let start = Instant::now();
        let op = OperatorProcess::start(settings, &name, next_instance()).await?;
        let (mut last, mut last_change) = (0.0, Duration::ZERO);
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = reconcile_total(&op.metrics().await.unwrap_or_default());
            if now != last {
                (last, last_change) = (now, start.elapsed());
            }
            if (last > 0.0 && start.elapsed() - last_change >= Duration::from_secs(5))
                || start.elapsed() > Duration::from_secs(600)
            {
                break;
            }
        }
        let resync = Requests::scrape(client).await?.minus(&before);
        let row = (
            scale,
            op.startup(),
            last_change.as_secs_f64(),
            resync.only(RESOURCES).writes(),
            resync.total(),
            op.vm_hwm_kib(),
        );
        op.stop().await;
        Ok::<_, anyhow::Error>(row)
    }
    .await;
    provider.stop().await;
    clear(client, &name).await;
    let (scale, startup, resync_seconds, resync_writes, resync_requests, memory) = measured?;
    println!(
        "bench:   restart: {}; resync {resync_seconds:.1}s, {resync_writes} writes",
        startup.describe()
    );
    // With a curve, the row's floor is its fastest point (each on a clean control plane).
    let mut floor_curve = floor_curve_runs(settings, client).await?;
    let floor_result = match fastest(&floor_curve) {
        Some(i) => floor_curve.remove(i),
        None => {
            let floor_ns = support::TestNamespace::new(client, "capt-bench-floor").await;
            let name = floor_ns.name.clone();
            println!("bench:   floor");
            let result = floor(settings, client, &name, settings.floor_concurrency).await;
            clear(client, &name).await;
            result?
        }
    };
    Ok(GrowthRow {
        control_planes: settings.control_planes,
        scale,
        floor_curve,
        floor: floor_result,
        startup,
        resync_seconds,
        resync_writes,
        resync_requests,
        memory_after_resync_kib: memory,
    })
}

fn md_growth(md: &mut String, s: &Settings, rows: &[GrowthRow], planned: usize) {
    // Replaces the previous version of this section (it is rewritten after each size).
    const TITLE: &str = "## Growth from 100 to 1,000 control planes";
    if let Some(i) = md.find(TITLE) {
        md.truncate(i);
    }
    md.push_str(&format!("{TITLE} (× {})\n\n", s.profiles));
    md.push_str(&format!("Per fleet size ({} of {planned} sizes measured), one after the other, each on a clean control plane: the scale run (the default bench's, a fresh operator), then that operator replaced by a fresh process (start-up: from its spawn to its first reconcile and to all its caches filled, from the timestamps of its `capt_fargate::startup` log lines; the resync: until no reconcile started for 5 s; its writes for captclusters, control planes, applies, Workspaces and Secrets), then the floor ({} applies in flight, or the fastest point of the curve below when `BENCH_FLOOR_CURVE` is set). One round per size, so the ratio carries the ±30 % of one pair; API server CPU is the steadier comparison. CPU per wall second says which process was busy: 2 CPUs are all there is, shared with the etcd, the bench's simulated provider and other work on the machine.\n\n", rows.len(), s.floor_concurrency));
    md.push_str("| Control planes | Applies | Operator | Floor | Ratio | API server CPU, operator / floor | API server CPU per wall second | Operator CPU (per wall second) | Requests, operator / floor | Requests per profile | Peak RSS at convergence | Restart: first reconcile / all caches filled | Resync (requests, writes) | Peak RSS after the resync | Load at start |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let api = |cpu: &CpuDelta| cpu.0.get("kube-apiserver").copied().unwrap_or(0.0);
        let op_cpu = r.scale.cpu.0.get("operator").copied().unwrap_or(0.0);
        let profiles = (r.control_planes * s.profiles).max(1) as f64;
        let st = &r.startup;
        let secs = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2} s"));
        md.push_str(&format!(
            "| {} | {} | {:.1} s | {:.1} s | {:.2}x | {:.1} s / {:.1} s | {:.2} | {:.1} s ({:.2}) | {:.0} / {:.0} | {:.1} / {:.1} | {} | {} / {} ({} caches) | {:.1} s ({:.0}, {:.0}) | {} | {} |\n",
            r.control_planes,
            r.control_planes * (s.profiles + 2),
            r.scale.seconds,
            r.floor.seconds,
            r.scale.seconds / r.floor.seconds,
            api(&r.scale.cpu),
            api(&r.floor.cpu),
            api(&r.scale.cpu) / r.scale.seconds,
            op_cpu,
            op_cpu / r.scale.seconds,
            r.scale.requests.total(),
            r.floor.requests.total(),
            r.scale.requests.total() / profiles,
            r.floor.requests.total() / profiles,
            mib(r.scale.memory_kib),
            secs(st.first_reconcile),
            secs(st.caches_filled),
            st.caches,
            r.resync_seconds,
            r.resync_requests,
            r.resync_writes,
            mib(r.memory_after_resync_kib),
            r.scale.load,
        ));
    }
    if rows.iter().any(|r| !r.floor_curve.is_empty()) {
        md.push_str("\nThe floor's concurrency curve (`BENCH_FLOOR_CURVE`), each point on a clean control plane; the fastest is the floor above (wall time, API server CPU):\n\n");
        for r in rows {
            let api = |cpu: &CpuDelta| cpu.0.get("kube-apiserver").copied().unwrap_or(0.0);
            let mut points: Vec<&FloorResult> = r
                .floor_curve
                .iter()
                .chain(std::iter::once(&r.floor))
                .collect();
            points.sort_by_key(|f| f.concurrency);
            let cells: Vec<String> = points
                .iter()
                .map(|f| {
                    format!(
                        "{} in flight {:.1} s ({:.1} s){}",
                        f.concurrency,
                        f.seconds,
                        api(&f.cpu),
                        if f.concurrency == r.floor.concurrency {
                            " fastest"
                        } else {
                            ""
                        }
                    )
                })
                .collect();
            md.push_str(&format!("- {}: {}\n", r.control_planes, cells.join(", ")));
        }
    }
    md.push_str("\nWhere the operator's extra requests went (operator minus floor, per profile, the five largest differences):\n\n");
    for r in rows {
        let profiles = (r.control_planes * s.profiles).max(1) as f64;
        let top: Vec<String> = largest_differences(&r.scale.requests, &r.floor.requests)
            .iter()
            .take(5)
            .map(|(k, d)| format!("{k} {:+.2}", d / profiles))
            .collect();
        md.push_str(&format!("- {}: {}\n", r.control_planes, top.join(", ")));
    }
    md.push_str("\nWhere the API server's extra time went (operator minus floor, the sum of `apiserver_request_duration_seconds` in milliseconds per profile, WATCH left out, the five largest differences; waits included, so a proxy for CPU):\n\n");
    for r in rows {
        let profiles = (r.control_planes * s.profiles).max(1) as f64;
        let top: Vec<String> = largest_second_differences(&r.scale.requests, &r.floor.requests)
            .iter()
            .take(5)
            .map(|(k, d)| format!("{k} {:+.1} ms", 1000.0 * d / profiles))
            .collect();
        md.push_str(&format!("- {}: {}\n", r.control_planes, top.join(", ")));
    }
    md.push_str(
        "\nResponses other than success (operator / floor, per kind of request and code):\n\n",
    );
    for r in rows {
        let failed = |q: &Requests| -> BTreeMap<String, f64> {
            let mut out = BTreeMap::new();
            for ((verb, resource, sub, code), n) in &q.0 {
                if !code.starts_with('2') {
                    let name = format!("{} {code}", request_name(verb, resource, sub));
                    *out.entry(name).or_insert(0.0) += n;
                }
            }
            out
        };
        let (op, fl) = (failed(&r.scale.requests), failed(&r.floor.requests));
        let keys: std::collections::BTreeSet<&String> = op.keys().chain(fl.keys()).collect();
        let cells: Vec<String> = keys
            .into_iter()
            .map(|k| {
                let n = |m: &BTreeMap<String, f64>| m.get(k).copied().unwrap_or(0.0);
                format!("{k} {:.0} / {:.0}", n(&op), n(&fl))
            })
            .collect();
        md.push_str(&format!("- {}: {}\n", r.control_planes, cells.join(", ")));
    }
    md.push_str(
        "\nKubernetes Events the operator published, by reason (Event objects / occurrences):\n\n",
    );
    for r in rows {
        let events: Vec<String> = r
            .scale
            .events
            .iter()
            .map(|(reason, (objects, occurrences))| format!("{reason} {objects}/{occurrences}"))
            .collect();
        md.push_str(&format!("- {}: {}\n", r.control_planes, events.join(", ")));
    }
    md.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_lines_are_read_from_the_text_log() {
        let spawned = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let log = "2023-11-14T22:13:20.100000Z  WARN capt_fargate::run: TEST ONLY\n\
                   2023-11-14T22:13:20.500000Z  INFO capt_fargate::startup: cache filled kind=\"Secret\" filled=1 created=2\n\
                   2023-11-14T22:13:20.750000Z  INFO capt_fargate::startup: first reconcile controller=\"controlplane\"\n\
                   2023-11-14T22:13:21.250000Z  INFO capt_fargate::startup: all caches filled caches=2\n";
        let s = Startup::parse(log, spawned);
        assert_eq!(s.first_reconcile, Some(0.75));
        assert_eq!(s.caches_filled, Some(1.25));
        assert_eq!(s.caches, 2);
    }

    #[test]
    fn the_fault_plan_is_reproducible_and_within_its_bounds() {
        let plan = fault_plan(&mut Rng::new(42), 100.0);
        assert_eq!(plan, fault_plan(&mut Rng::new(42), 100.0));
        assert_eq!(plan.len(), KILLS + 1);
        assert!(plan.windows(2).all(|w| w[0].0 <= w[1].0));
        for (at, kind) in &plan {
            match kind {
                FaultKind::Kill { down } => {
                    assert!((5.0..75.0).contains(at) && *down < Duration::from_secs(2))
                }
                FaultKind::ApiServerRestart => assert!((15.0..60.0).contains(at)),
            }
        }
    }
}
