//! Benchmark on the real local control plane, with the simulated provider-terraform answering
//! at once (delay 0). Run with `tests/bench`; scale down with BENCH_CONTROL_PLANES and
//! BENCH_PROFILES (default 200 and 8). Measures, and writes to BENCHMARKS.md:
//! 1. scale: time for N clusters, each a CAPTCluster (the VPC) and a control plane with P
//!    additional profiles, to converge, with the operator as a child process
//!    (target/release/capt-fargate run);
//! 2. floor: the same objects created and status-patched directly with a plain client, the same
//!    simulated provider answering (BENCH_FLOOR_CONCURRENCY applies in flight, default 128;
//!    BENCH_FLOOR_CURVE=1 measures 32, 64, 128, 256 and 512 first, BENCH_FLOOR_CURVE=128,256
//!    the ones listed); then BENCH_ROUNDS - 1 more
//!    scale-and-floor pairs (default 5 in all, the floor first in even rounds) for the median
//!    ratio; each side on a clean control plane;
//! 3. steady state: API requests by verb in the 20 s after an operator restart;
//! 4. memory: peak RSS of the operator process;
//! 5. latency: one profile's tags changed, until the provider applied it and the control plane
//!    reports it;
//! 6. the operator's own metrics.
//!
//! BENCH_CONVERGENCE_ONLY=1 measures only the scale's convergence (no floor, restart or
//! latency; BENCHMARKS.md is left alone), with its curve and, for a serialised provider, the
//! real time it stands for; BENCH_CONVERGENCE_LIMIT (seconds) stops it early with the progress
//! made.

// The system allocator, as the operator's (`src/main.rs`), counting per thread the heap bytes
// allocated and not freed, so that the bytes per cached object can be measured (`CacheCost`).
// This process also runs the simulated provider: with mimalloc until a328429, and on the
// multi-threaded scheduler glibc's malloc took about a sixth of its CPU (perf), so the
// provider's speed, the same for the operator and the floor, is not comparable across that
// commit.
#[global_allocator]
static ALLOCATOR: Counting<PerThread> = Counting(PerThread);

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;
// Issue 20's phases (faults at scale, latency under load, start-up, growth): `BENCH_PHASES`.
#[path = "bench_scale/mod.rs"]
mod scale_phases;

use capt_fargate::heap_stats::{Counting, PerThread};
use common::{
    cleanup, cluster_pid, cpu_seconds, env_usize, install_crds, ready_control_plane_status,
    template,
};

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use futures::{FutureExt, StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::Notify;

use capt_fargate::api::conditions::{READY, SYNCED};
use capt_fargate::api::{
    CAPTCluster, CAPTClusterStatus, CAPTClusterWorkspaceStatus, CAPTControlPlane, FailureDomain,
    Initialization, Workspace, WorkspaceTemplate, WorkspaceTemplateApply,
    WorkspaceTemplateApplyStatus,
};
use capt_fargate::names;
use capt_fargate::render::{eks, fargate, vpc};
use capt_fargate::status::conditions::{WantedCondition, merge};

const MANAGER: &str = "capt-fargate-bench";
/// Resources whose API requests the steady-state measurement counts (events and leases are
/// left out).
const RESOURCES: &[&str] = &[
    "captclusters",
    "captcontrolplanes",
    "workspacetemplateapplies",
    "workspaces",
    "secrets",
];
/// Resources counted for the scale and floor runs: those, plus templates and events.
const ALL_RESOURCES: &[&str] = &[
    "captclusters",
    "captcontrolplanes",
    "workspacetemplateapplies",
    "workspaces",
    "secrets",
    "workspacetemplates",
    "events",
];
const APPLY_CONCURRENCY: usize = 32;
/// Applies in flight in the floor by default: where more stopped making it faster
/// (`BENCH_FLOOR_CURVE=1` measures the curve).
const FLOOR_CONCURRENCY: usize = 128;
/// The floor's concurrency curve (`BENCH_FLOOR_CURVE=1`); 512 shows whether 256 was enough
/// at 1,000 control planes.
const FLOOR_CURVE: [usize; 5] = [32, 64, 128, 256, 512];
const STEADY_WINDOW: Duration = Duration::from_secs(20);
const LATENCY_SAMPLES: usize = 50;

struct Settings {
    control_planes: usize,
    profiles: usize,
    /// Scale-and-floor pairs in all, the first with every other measurement: one pair's ratio
    /// varies by ±30 % on a shared 2-CPU machine, so the verdict is the median.
    rounds: usize,
    operator_bin: PathBuf,
    kubeconfig: PathBuf,
    out: PathBuf,
    /// The simulated provider's mode (`CAPT_SIM_SERIAL`, `CAPT_SIM_MINUTE_MS`).
    mode: support::simulated_provider::Mode,
    /// Profile changes timed by the latency measurement (`BENCH_LATENCY_SAMPLES`).
    latency_samples: usize,
    /// Applies in flight in the floor (`BENCH_FLOOR_CONCURRENCY`).
    floor_concurrency: usize,
    /// Applies in flight at which the first round (and each growth size) measures the floor
    /// before taking the fastest (`BENCH_FLOOR_CURVE`: `1` for [`FLOOR_CURVE`], or a
    /// comma-separated list); empty: only `floor_concurrency`.
    floor_curve: Vec<usize>,
}

impl Settings {
    fn total_profiles(&self) -> usize {
        self.profiles + 2
    }

    /// The provider's own time for the whole fleet, one reconcile at a time, in real minutes:
    /// per cluster the VPC Workspace's apply and observation (plans only: the simulator gives a
    /// VPC no time of its own), the EKS Workspace's apply (cluster, default profiles, plan) and
    /// its observation, then per profile its apply and observation. None without scaled time.
    fn serial_minutes(&self) -> Option<f64> {
        let t = self.mode.timing?;
        let vpc = 2.0 * t.plan;
        let eks = t.cluster_create + 2.0 * t.profile_operation + 2.0 * t.plan;
        let profile = t.profile_operation + 2.0 * t.plan;
        Some(self.control_planes as f64 * (vpc + eks + self.profiles as f64 * profile))
    }

    /// Like [`Self::serial_minutes`], shared by `--max-reconcile-rate` reconciles at a time.
    fn serial_minutes_per_slot(&self) -> Option<f64> {
        Some(self.serial_minutes()? / self.mode.rate.max(1) as f64)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let root = support::repo_root();
    // tests/bench passes a private control plane; without it, the shared one of the tests.
    let (kubeconfig, client) = match std::env::var_os("BENCH_KUBECONFIG") {
        Some(path) => {
            let path = PathBuf::from(path);
            let client = support::cluster::client_from(&path).await;
            install_crds(&client).await?;
            (path, client)
        }
        None => (
            support::cluster::kubeconfig().await,
            support::client().await,
        ),
    };
    let settings = Settings {
        control_planes: env_usize("BENCH_CONTROL_PLANES", 200),
        profiles: env_usize("BENCH_PROFILES", 8),
        rounds: env_usize("BENCH_ROUNDS", 5).max(1),
        operator_bin: std::env::var_os("BENCH_OPERATOR_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/release/capt-fargate")),
        kubeconfig,
        out: std::env::var_os("BENCH_OUT")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("BENCHMARKS.md")),
        mode: support::simulated_provider::Mode::from_env(),
        latency_samples: env_usize("BENCH_LATENCY_SAMPLES", LATENCY_SAMPLES),
        floor_concurrency: env_usize("BENCH_FLOOR_CONCURRENCY", FLOOR_CONCURRENCY),
        floor_curve: floor_curve(&std::env::var("BENCH_FLOOR_CURVE").unwrap_or_default())?,
    };
    anyhow::ensure!(
        settings.profiles <= 8,
        "BENCH_PROFILES must be at most 8 (AWS quota of 10 per cluster, 2 are default profiles)"
    );
    anyhow::ensure!(
        settings.operator_bin.exists(),
        "{} not found; run tests/bench",
        settings.operator_bin.display()
    );
    let machine = Machine::now(&settings.kubeconfig);
    println!(
        "bench: {} control planes x {} additional profiles; {}",
        settings.control_planes,
        settings.profiles,
        machine.describe()
    );
    if let Some(phases) = scale_phases::Phases::from_env()? {
        return scale_phases::run(&settings, &client, &machine, &phases).await;
    }

    if std::env::var("BENCH_CONVERGENCE_ONLY").is_ok_and(|v| v == "1") {
        return convergence_only(&settings, &client).await;
    }

    let scale_ns = support::TestNamespace::new(&client, "capt-bench-scale").await;
    let floor_ns = support::TestNamespace::new(&client, "capt-bench-floor").await;
    let run = std::panic::AssertUnwindSafe(run(&settings, &client, &scale_ns.name, &floor_ns.name))
        .catch_unwind()
        .await;
    println!("bench: cleaning up");
    let names = [scale_ns.name.clone(), floor_ns.name.clone()];
    cleanup(&client, &names[0]).await;
    cleanup(&client, &names[1]).await;
    scale_ns.delete().await;
    floor_ns.delete().await;
    wait_until_gone(&client, &names).await;
    let mut report = match run {
        Ok(result) => result?,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    if let (Some(sc), Some(fl)) = (&report.scale, &report.floor) {
        report.rounds.push(Round::of(sc, fl, false));
    }
    for round in 2..=settings.rounds {
        let floor_first = round % 2 == 0;
        println!(
            "bench: round {round} of {}: {}",
            settings.rounds,
            if floor_first {
                "floor, then scale"
            } else {
                "scale, then floor"
            }
        );
        let pair = extra_round(&settings, &client, round, floor_first).await?;
        println!(
            "bench:   scale {:.1}s, floor {:.1}s, ratio {:.2}x",
            pair.scale_seconds,
            pair.floor_seconds,
            pair.ratio()
        );
        report.rounds.push(pair);
    }
    if let Some(median) = median_ratio(&report.rounds) {
        println!(
            "bench: median ratio over {} rounds {median:.2}x",
            report.rounds.len()
        );
    }
    let markdown = report.markdown(&settings, &machine, &Machine::now(&settings.kubeconfig));
    write_benchmarks(&settings.out, &markdown)?;
    println!("bench: wrote {}", settings.out.display());
    Ok(())
}

/// Every measurement, in order; the operator process and the simulated provider are stopped
/// before returning, also on errors.
async fn run(
    settings: &Settings,
    client: &Client,
    scale_ns: &str,
    floor_ns: &str,
) -> Result<Report> {
    let provider = support::simulated_provider::SimulatedProvider::start_on_own_thread(
        &settings.kubeconfig,
        scale_ns,
        Duration::ZERO,
    );
    let mut operator = None;
    let result = measure_operator(settings, client, scale_ns, &mut operator).await;
    if let Some(op) = operator.take() {
        op.stop().await;
    }
    let rejections = provider.rejections().len();
    provider.stop().await;
    let mut report = result?;
    report.rejections = rejections;
    // The floor gets a clean control plane: the operator run's objects are deleted first.
    clear(client, scale_ns).await;
    report.floor_curve = floor_curve_runs(settings, client).await?;
    let concurrency = fastest(&report.floor_curve).map_or(settings.floor_concurrency, |i| {
        report.floor_curve[i].concurrency
    });
    println!("bench: floor (plain client, no operator, {concurrency} in flight)");
    report.floor = Some(floor(settings, client, floor_ns, concurrency).await?);
    report.print();
    Ok(report)
}

/// The floor at each concurrency of `settings.floor_curve`, each in a fresh namespace on a
/// clean control plane.
async fn floor_curve_runs(settings: &Settings, client: &Client) -> Result<Vec<FloorResult>> {
    let mut runs = Vec::new();
    for &c in &settings.floor_curve {
        println!("bench: floor with {c} in flight");
        let ns = support::TestNamespace::new(client, "capt-bench-floor").await;
        let result = floor(settings, client, &ns.name, c).await;
        clear(client, &ns.name).await;
        runs.push(result?);
    }
    Ok(runs)
}

/// The index of a curve's fastest floor (None for an empty curve).
fn fastest(curve: &[FloorResult]) -> Option<usize> {
    (0..curve.len()).min_by(|&a, &b| curve[a].seconds.total_cmp(&curve[b].seconds))
}

/// `BENCH_FLOOR_CURVE`: empty or `0` for none, `1` for [`FLOOR_CURVE`], else applies in flight
/// separated by commas.
fn floor_curve(value: &str) -> Result<Vec<usize>> {
    match value.trim() {
        "" | "0" => Ok(Vec::new()),
        "1" => Ok(FLOOR_CURVE.to_vec()),
        list => list
            .split(',')
            .map(|c| {
                c.trim().parse::<usize>().ok().filter(|&c| c > 0).ok_or_else(|| {
                    anyhow::anyhow!("BENCH_FLOOR_CURVE: {c:?} is not a positive count of applies in flight (use 1, or e.g. 128,256,512)")
                })
            })
            .collect(),
    }
}

/// Deletes a namespace's objects and the namespace, waits until they are gone and the API
/// server is quiet again, so that the next measurement runs on a clean control plane.
async fn clear(client: &Client, ns: &str) {
    cleanup(client, ns).await;
    let _ = Api::<Namespace>::all(client.clone())
        .delete(ns, &Default::default())
        .await;
    wait_until_gone(client, &[ns.to_string()]).await;
    wait_until_quiet(client).await;
}

/// Requests for the measured kinds per [`QUIET_WINDOW`] below which the API server counts as
/// quiet: kube-controller-manager's leases and the bench's own polls stay under it.
const QUIET_REQUESTS: f64 = 10.0;
const QUIET_WINDOW: Duration = Duration::from_secs(2);
/// How long [`wait_until_quiet`] waits at most: at 1,000 × 8 the garbage collector was still
/// at about 40 GETs a second 180 s after the namespace was gone (12,000 Secrets to look at).
const QUIET_LIMIT: Duration = Duration::from_secs(600);

/// Waits until the API server serves at most [`QUIET_REQUESTS`] requests for the measured
/// kinds in a [`QUIET_WINDOW`]. A namespace can be gone while kube-controller-manager's garbage
/// collector still works through its queue (a GET of each dependent's owner, answered 404):
/// those requests would load, and be counted in, the next measurement.
async fn wait_until_quiet(client: &Client) {
    let started = Instant::now();
    let Ok(first) = Requests::scrape(client).await else {
        return;
    };
    let mut before = first.clone();
    loop {
        tokio::time::sleep(QUIET_WINDOW).await;
        let Ok(now) = Requests::scrape(client).await else {
            return;
        };
        let window = now.minus(&before).total();
        let quiet = window <= QUIET_REQUESTS;
        if quiet || started.elapsed() > QUIET_LIMIT {
            let seen = now.minus(&first);
            let mut by_request: Vec<(String, f64)> = seen.by_request().into_iter().collect();
            by_request.sort_by(|a, b| b.1.total_cmp(&a.1));
            let top: Vec<String> = by_request
                .iter()
                .take(3)
                .map(|(k, n)| format!("{k} {n:.0}"))
                .collect();
            println!(
                "bench: the API server was {} after {:.1}s ({:.0} requests meanwhile: {})",
                if quiet { "quiet" } else { "still busy" },
                started.elapsed().as_secs_f64(),
                seen.total(),
                top.join(", ")
            );
            return;
        }
        before = now;
    }
}

/// One scale-and-floor pair.
struct Round {
    scale_seconds: f64,
    floor_seconds: f64,
    /// API server CPU seconds during each.
    scale_api_cpu: f64,
    floor_api_cpu: f64,
    /// Load averages at the start of each.
    scale_load: String,
    floor_load: String,
    floor_first: bool,
    floor_concurrency: usize,
}

impl Round {
    fn of(scale: &ScaleResult, floor: &FloorResult, floor_first: bool) -> Round {
        let api = |cpu: &CpuDelta| cpu.0.get("kube-apiserver").copied().unwrap_or(0.0);
        Round {
            scale_seconds: scale.seconds,
            floor_seconds: floor.seconds,
            scale_api_cpu: api(&scale.cpu),
            floor_api_cpu: api(&floor.cpu),
            scale_load: scale.load.clone(),
            floor_load: floor.load.clone(),
            floor_first,
            floor_concurrency: floor.concurrency,
        }
    }

    fn ratio(&self) -> f64 {
        self.scale_seconds / self.floor_seconds
    }
}

/// The load averages now (1, 5 and 15 minutes).
fn load_now() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn measure_operator(
    settings: &Settings,
    client: &Client,
    ns: &str,
    slot: &mut Option<OperatorProcess>,
) -> Result<Report> {
    let mut report = Report::default();
    prepare_inputs(client, ns).await?;
    *slot = Some(OperatorProcess::start(settings, ns, 1).await?);
    println!("bench: scale");
    report.scale = Some(scale(settings, client, ns, slot.as_ref().unwrap()).await?);
    report.cache_costs = cache_costs(client, ns).await?;
    println!("bench: steady state (operator restart)");
    report.steady = Some(steady_state(settings, client, ns, slot).await?);
    println!("bench: latency");
    report.latency = Some(latency(settings, client, ns).await?);
    let op = slot.as_ref().unwrap();
    report.memory_after_latency_kib = op.vm_hwm_kib();
    report.operator_metrics = op
        .metrics()
        .await
        .unwrap_or_else(|e| format!("unavailable: {e}"));
    report.operator_log_lines = op.log_lines();
    Ok(report)
}

// ---------------------------------------------------------------------------------------------
// Inputs

fn control_plane_name(i: usize) -> String {
    format!("bench-{i:03}")
}

fn profile_name(j: usize) -> String {
    format!("p{j}")
}

/// A control plane with `profiles` additional profiles; `tags[j]` is profile j's `bench` tag.
fn control_plane(ns: &str, i: usize, tags: &[String]) -> CAPTControlPlane {
    let profiles: Vec<Value> = tags
        .iter()
        .enumerate()
        .map(|(j, tag)| {
            json!({
                "name": profile_name(j),
                "workspaceTemplateRef": { "name": "eks-fargate-profile" },
                "selectors": [{ "namespace": format!("workload-{j}") }],
                "tags": { "bench": tag },
            })
        })
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1",
        "kind": "CAPTControlPlane",
        "metadata": { "name": control_plane_name(i), "namespace": ns },
        "spec": {
            "version": "1.31",
            "workspaceTemplateRef": { "name": "eks-controlplane" },
            "controlPlaneConfig": { "region": "ap-northeast-1", "endpointAccess": { "public": true, "private": true } },
            "additionalTags": { "environment": "bench" },
            "additionalFargateProfiles": profiles,
        }
    }))
    .expect("valid control plane")
}

fn initial_tags(settings: &Settings) -> Vec<String> {
    vec!["initial".to_string(); settings.profiles]
}

/// The CAPTCluster (the VPC, from the shipped `vpc` template) of control plane `i`, of the
/// same name, as `config/samples/captcluster.yaml`.
fn capt_cluster(ns: &str, i: usize) -> CAPTCluster {
    serde_json::from_value(json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
        "kind": "CAPTCluster",
        "metadata": { "name": control_plane_name(i), "namespace": ns },
        "spec": { "region": "ap-northeast-1", "vpcTemplateRef": { "name": "vpc" } },
    }))
    .expect("valid CAPTCluster")
}

/// The status the operator's CAPTCluster controller writes once the VPC is ready
/// (`controller::infra_cluster::status::build_status` for a VPC from a template): `outputs`
/// are the VPC apply's outputs as text and `last_applied_time` its time, as its status reports
/// them.
fn ready_capt_cluster_status(
    c: &CAPTCluster,
    workspace: &str,
    outputs: &BTreeMap<String, String>,
    last_applied_time: Option<Time>,
) -> CAPTClusterStatus {
    let vpc_id = outputs.get("vpc_id").cloned().unwrap_or_default();
    let mut zones: Vec<String> = outputs
        .get("availability_zones")
        .and_then(|z| serde_json::from_str(z).ok())
        .unwrap_or_default();
    zones.sort();
    let message = format!("VPC {vpc_id} is ready");
    let desired = [
        WantedCondition::new("VPCReady", true, "VPCCreated", message.clone()),
        WantedCondition::new(READY, true, "VPCCreated", message),
        WantedCondition::new("Paused", false, "NotPaused", ""),
        WantedCondition::new("Deleting", false, "NotDeleting", ""),
    ];
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    CAPTClusterStatus {
        ready: true,
        initialization: Some(Initialization {
            provisioned: Some(true),
        }),
        vpc_id: Some(vpc_id),
        vpc_workspace_name: Some(workspace.to_string()),
        failure_domains: zones
            .into_iter()
            .map(|name| FailureDomain {
                name,
                control_plane: None,
            })
            .collect(),
        conditions: merge(&[], &desired, c.metadata.generation, &now),
        workspace_template_status: Some(CAPTClusterWorkspaceStatus {
            ready: true,
            last_failure_message: None,
            workspace_name: Some(workspace.to_string()),
            last_applied_time,
        }),
        observed_generation: c.metadata.generation,
        ..Default::default()
    }
}

/// The three WorkspaceTemplates (VPC, EKS cluster, Fargate profile), untimed.
async fn prepare_inputs(client: &Client, ns: &str) -> Result<()> {
    let root = support::repo_root();
    for file in ["vpc.yaml", "eks-controlplane.yaml", "fargate-profile.yaml"] {
        support::apply_yaml(
            client,
            ns,
            &root.join("config/workspacetemplates").join(file),
        )
        .await;
    }
    Ok(())
}

/// Runs `f` for every item with at most `limit` in flight; the first error wins.
async fn for_each_concurrent<I, F, Fut>(items: I, limit: usize, f: F) -> Result<()>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    stream::iter(items)
        .map(f)
        .buffer_unordered(limit)
        .try_collect::<Vec<()>>()
        .await
        .map(|_| ())
}

/// One more scale run (fresh operator, provider and namespace) and floor, the floor first if
/// `floor_first`; each runs on a clean control plane (the other's objects deleted first).
async fn extra_round(
    settings: &Settings,
    client: &Client,
    round: usize,
    floor_first: bool,
) -> Result<Round> {
    let scale_ns = support::TestNamespace::new(client, "capt-bench-scale").await;
    let floor_ns = support::TestNamespace::new(client, "capt-bench-floor").await;
    let (scale_name, floor_name) = (scale_ns.name.clone(), floor_ns.name.clone());
    let pair = std::panic::AssertUnwindSafe(async {
        let run_scale = || async {
            let provider = support::simulated_provider::SimulatedProvider::start_on_own_thread(
                &settings.kubeconfig,
                &scale_name,
                Duration::ZERO,
            );
            let measured = async {
                prepare_inputs(client, &scale_name).await?;
                let op = OperatorProcess::start(settings, &scale_name, round + 1).await?;
                let result = scale(settings, client, &scale_name, &op).await;
                op.stop().await;
                result
            }
            .await;
            provider.stop().await;
            clear(client, &scale_name).await;
            measured
        };
        let run_floor = || async {
            let result = floor(settings, client, &floor_name, settings.floor_concurrency).await;
            clear(client, &floor_name).await;
            result
        };
        let (scale, floor) = if floor_first {
            let floor = run_floor().await?;
            (run_scale().await?, floor)
        } else {
            let scale = run_scale().await?;
            (scale, run_floor().await?)
        };
        Ok::<_, anyhow::Error>(Round::of(&scale, &floor, floor_first))
    })
    .catch_unwind()
    .await;
    cleanup(client, &scale_name).await;
    cleanup(client, &floor_name).await;
    scale_ns.delete().await;
    floor_ns.delete().await;
    wait_until_gone(client, &[scale_name, floor_name]).await;
    match pair {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// The median of the rounds' operator / floor ratios (the mean of the middle two for an even
/// count).
fn median_ratio(rounds: &[Round]) -> Option<f64> {
    let mut ratios: Vec<f64> = rounds.iter().map(Round::ratio).collect();
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(ratios[n / 2]),
        _ => Some((ratios[n / 2 - 1] + ratios[n / 2]) / 2.0),
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Scale

#[derive(Default)]
struct ScaleResult {
    seconds: f64,
    apply_seconds: f64,
    requests: Requests,
    cpu: CpuDelta,
    operator_metrics: String,
    memory_kib: u64,
    /// Peak RSS of the operator once started, before the control planes (its fixed base).
    memory_start_kib: u64,
    /// Load averages at the start.
    load: String,
    /// Events by reason: (Event objects, occurrences including repeats).
    events: BTreeMap<String, (usize, i64)>,
}

async fn scale(
    settings: &Settings,
    client: &Client,
    ns: &str,
    op: &OperatorProcess,
) -> Result<ScaleResult> {
    let watch = Watch::control_planes(client, ns);
    let api: Api<CAPTControlPlane> = Api::namespaced(client.clone(), ns);
    let infra: Api<CAPTCluster> = Api::namespaced(client.clone(), ns);
    let memory_start_kib = op.vm_hwm_kib();
    let load = load_now();
    let before = (
        Requests::scrape(client).await?,
        CpuSample::now(&settings.kubeconfig, op.pid()),
    );
    let start = Instant::now();
    apply_fleet(settings, ns, &api, &infra).await?;
    let apply_seconds = start.elapsed().as_secs_f64();
    let total = settings.total_profiles();
    // Serialised with scaled time, the provider's own work bounds it: allow three times that.
    let provider_bound = settings
        .serial_minutes_per_slot()
        .zip(settings.mode.timing)
        .map(|(minutes, t)| t.of(3.0 * minutes))
        .unwrap_or_default();
    let timeout = Duration::from_secs(120 + settings.control_planes as u64 * 6) + provider_bound;
    let mut last_print = Instant::now();
    watch
        .until(timeout, |w| {
            let cps = w.cps.state();
            let done = cps.iter().filter(|cp| converged(cp, total)).count();
            let vpcs = w.capt_clusters.state();
            let vpcs_ready = vpcs.iter().filter(|c| capt_cluster_ready(c)).count();
            if last_print.elapsed() > Duration::from_secs(10) {
                println!(
                    "bench:   {:>5.0}s {done}/{} control planes converged, {vpcs_ready} CAPTClusters ready",
                    start.elapsed().as_secs_f64(),
                    settings.control_planes
                );
                last_print = Instant::now();
            }
            (cps.len() == settings.control_planes
                && done == cps.len()
                && vpcs.len() == settings.control_planes
                && vpcs_ready == vpcs.len())
            .then_some(())
        })
        .await
        .context("scale: control planes did not converge")?;
    let seconds = start.elapsed().as_secs_f64();
    let requests = Requests::scrape(client).await?.minus(&before.0);
    let cpu = CpuSample::now(&settings.kubeconfig, op.pid()).minus(&before.1);
    watch.stop();
    let result = ScaleResult {
        seconds,
        apply_seconds,
        requests,
        cpu,
        operator_metrics: op.metrics().await.unwrap_or_default(),
        memory_kib: op.vm_hwm_kib(),
        memory_start_kib,
        load,
        events: events_by_reason(client, ns).await?,
    };
    println!("bench:   converged in {seconds:.1}s");
    Ok(result)
}

/// Per cluster, as `kubectl apply` of the samples: its CAPTCluster (the VPC), then its control
/// plane.
async fn apply_fleet(
    settings: &Settings,
    ns: &str,
    api: &Api<CAPTControlPlane>,
    infra: &Api<CAPTCluster>,
) -> Result<()> {
    let tags = initial_tags(settings);
    for_each_concurrent(0..settings.control_planes, APPLY_CONCURRENCY, |i| {
        let (api, cp) = (api.clone(), control_plane(ns, i, &tags));
        let (infra, c) = (infra.clone(), capt_cluster(ns, i));
        async move {
            infra
                .patch(
                    &c.name_any(),
                    &PatchParams::apply(MANAGER),
                    &Patch::Apply(&c),
                )
                .await?;
            api.patch(
                &cp.name_any(),
                &PatchParams::apply(MANAGER),
                &Patch::Apply(&cp),
            )
            .await?;
            Ok(())
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Convergence only (BENCH_CONVERGENCE_ONLY=1)

/// The scale's convergence alone, in a namespace of its own: when the first cluster, a quarter,
/// half, three quarters and all had converged (every profile of the control plane ready and its
/// CAPTCluster ready), with the provider's progress. With scaled time, also the real time this
/// stands for: wall time over the minute (an upper bound: the provider's API requests, a few
/// milliseconds each, then count as scaled minutes), and that bound less the provider's
/// reconcile time outside Terraform and AWS per reconcile slot (exact while every slot is busy,
/// which the provider is when it bounds convergence).
async fn convergence_only(settings: &Settings, client: &Client) -> Result<()> {
    let ns = support::TestNamespace::new(client, "capt-bench-scale").await;
    let provider = support::simulated_provider::SimulatedProvider::start_on_own_thread(
        &settings.kubeconfig,
        &ns.name,
        Duration::ZERO,
    );
    let limit = std::env::var("BENCH_CONVERGENCE_LIMIT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs);
    let measured = std::panic::AssertUnwindSafe(async {
        prepare_inputs(client, &ns.name).await?;
        let op = OperatorProcess::start(settings, &ns.name, 1).await?;
        let result = converge_fleet(settings, client, &ns.name, &provider, limit).await;
        op.stop().await;
        result
    })
    .catch_unwind()
    .await;
    provider.stop().await;
    println!("bench: cleaning up");
    clear(client, &ns.name).await;
    match measured {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

async fn converge_fleet(
    settings: &Settings,
    client: &Client,
    ns: &str,
    provider: &support::simulated_provider::SimulatedProvider,
    limit: Option<Duration>,
) -> Result<()> {
    let watch = Watch::control_planes(client, ns);
    let api: Api<CAPTControlPlane> = Api::namespaced(client.clone(), ns);
    let infra: Api<CAPTCluster> = Api::namespaced(client.clone(), ns);
    let n = settings.control_planes;
    let (total, workspaces) = (settings.total_profiles(), n * (settings.profiles + 2));
    let timing = settings.mode.timing.filter(|_| settings.mode.serial);
    let rate = settings.mode.rate.max(1) as f64;
    println!(
        "bench: convergence only; load {}; provider {}",
        load_now(),
        match timing {
            Some(t) => format!(
                "serialised, --max-reconcile-rate {}, --poll {} min, one real minute {} ms; its own work {:.0} real minutes per slot",
                settings.mode.rate,
                t.poll,
                t.minute.as_millis(),
                settings.serial_minutes_per_slot().unwrap_or_default()
            ),
            None => "instant, concurrent".into(),
        }
    );
    // Real minutes that `elapsed` stands for: (upper bound, less the provider's API time).
    let real = |elapsed: Duration| -> Option<(f64, f64)> {
        let t = timing?;
        let obs = provider.observations.lock().unwrap();
        let api_time = obs.reconcile_time.saturating_sub(obs.scaled_time);
        let minute = t.minute.as_secs_f64();
        let upper = elapsed.as_secs_f64() / minute;
        Some((upper, upper - api_time.as_secs_f64() / rate / minute))
    };
    let hours = |r: Option<(f64, f64)>| match r {
        Some((upper, corrected)) => format!(
            " = {:.1} real hours ({:.1} less the provider's API time)",
            upper / 60.0,
            corrected / 60.0
        ),
        None => String::new(),
    };
    let start = Instant::now();
    apply_fleet(settings, ns, &api, &infra).await?;
    let marks = [1, n.div_ceil(4), n.div_ceil(2), (3 * n).div_ceil(4), n];
    // Each mark with when it was reached and the real time it stood for then.
    type Mark = (usize, Duration, Option<(f64, f64)>);
    let mut reached: Vec<Mark> = Vec::new();
    let mut last_print = Instant::now();
    let timeout = limit.unwrap_or(Duration::from_secs(24 * 3600));
    let outcome = watch
        .until(timeout, |w| {
            let done = w
                .cps
                .state()
                .iter()
                .filter(|cp| converged(cp, total))
                .count();
            let vpcs = w
                .capt_clusters
                .state()
                .iter()
                .filter(|c| capt_cluster_ready(c))
                .count();
            // A cluster counts once its control plane and its CAPTCluster are both ready.
            let done = done.min(vpcs);
            for &m in &marks {
                if done >= m && !reached.iter().any(|(r, _, _)| *r == m) {
                    reached.push((m, start.elapsed(), real(start.elapsed())));
                }
            }
            if last_print.elapsed() > Duration::from_secs(30) {
                let applies: u32 = provider.observations.lock().unwrap().applies.values().sum();
                println!(
                    "bench:   {:>6.0}s {done}/{n} clusters converged, {vpcs} CAPTClusters ready, {applies}/{workspaces} applies{}",
                    start.elapsed().as_secs_f64(),
                    hours(real(start.elapsed()))
                );
                last_print = Instant::now();
            }
            (done == n).then_some(())
        })
        .await;
    watch.stop();
    let elapsed = start.elapsed();
    let (applies, reconcile_time, scaled_time) = {
        let obs = provider.observations.lock().unwrap();
        let applies: u32 = obs.applies.values().sum();
        (applies, obs.reconcile_time, obs.scaled_time)
    };
    for (m, at, then) in &reached {
        println!(
            "bench: {m}/{n} clusters converged after {:.1}s{}",
            at.as_secs_f64(),
            hours(*then)
        );
    }
    match outcome {
        Ok(()) => println!(
            "bench: all {n} converged after {:.1}s{}, {applies}/{workspaces} applies",
            elapsed.as_secs_f64(),
            hours(real(elapsed))
        ),
        Err(_) => println!(
            "bench: stopped at the limit after {:.1}s{}, {applies}/{workspaces} applies done",
            elapsed.as_secs_f64(),
            hours(real(elapsed))
        ),
    }
    println!(
        "bench: provider reconciles {:.1}s in all, {:.1}s of it in scaled Terraform and AWS time; load {}",
        reconcile_time.as_secs_f64(),
        scaled_time.as_secs_f64(),
        load_now()
    );
    Ok(())
}

async fn events_by_reason(client: &Client, ns: &str) -> Result<BTreeMap<String, (usize, i64)>> {
    use k8s_openapi::api::events::v1::Event;
    let mut out: BTreeMap<String, (usize, i64)> = BTreeMap::new();
    for e in Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
    {
        let entry = out.entry(e.reason.clone().unwrap_or_default()).or_default();
        entry.0 += 1;
        entry.1 += e
            .series
            .as_ref()
            .map(|s| s.count as i64)
            .or(e.deprecated_count.map(i64::from))
            .unwrap_or(1)
            .max(1);
    }
    Ok(out)
}

/// Summary `total/total` for the current generation.
fn converged(cp: &CAPTControlPlane, total: usize) -> bool {
    let Some(status) = cp.status.as_ref() else {
        return false;
    };
    status.observed_generation == cp.metadata.generation
        && status.fargate_profiles_summary.as_deref() == Some(&format!("{total}/{total}"))
}

/// A CAPTCluster whose status reports the VPC ready for its current generation.
fn capt_cluster_ready(c: &CAPTCluster) -> bool {
    c.status
        .as_ref()
        .is_some_and(|s| s.ready && s.observed_generation == c.metadata.generation)
}

/// Reflector stores of the bench namespace's control planes and CAPTClusters (and, for the
/// floor and the latency measurement, its Workspaces), with a notification on every change.
struct Watch {
    cps: Store<CAPTControlPlane>,
    capt_clusters: Store<CAPTCluster>,
    workspaces: Option<Store<Workspace>>,
    changed: Arc<Notify>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Watch {
    fn control_planes(client: &Client, ns: &str) -> Watch {
        let changed = Arc::new(Notify::new());
        let (cps, writer) = reflector::store();
        let stream = reflector::reflector(
            writer,
            watcher(
                Api::<CAPTControlPlane>::namespaced(client.clone(), ns),
                watcher::Config::default(),
            ),
        );
        let (capt_clusters, writer) = reflector::store();
        let infra = reflector::reflector(
            writer,
            watcher(
                Api::<CAPTCluster>::namespaced(client.clone(), ns),
                watcher::Config::default(),
            ),
        );
        Watch {
            cps,
            capt_clusters,
            workspaces: None,
            tasks: vec![
                Self::drive(stream, changed.clone()),
                Self::drive(infra, changed.clone()),
            ],
            changed,
        }
    }

    fn with_workspaces(mut self, client: &Client, ns: &str) -> Watch {
        let (store, writer) = reflector::store();
        let config =
            watcher::Config::default().labels(&format!("{}={}", names::LABEL_APPLY_NAMESPACE, ns));
        let stream = reflector::reflector(
            writer,
            watcher(Api::<Workspace>::all(client.clone()), config),
        );
        self.tasks.push(Self::drive(stream, self.changed.clone()));
        self.workspaces = Some(store);
        self
    }

    fn drive<K, S>(stream: S, changed: Arc<Notify>) -> tokio::task::JoinHandle<()>
    where
        S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
        K: Send + 'static,
    {
        tokio::spawn(stream.default_backoff().for_each(move |_| {
            changed.notify_waiters();
            async {}
        }))
    }

    /// Waits until `check` returns Some, re-checking after every watch event.
    async fn until<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&Watch) -> Option<T>,
    ) -> Result<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(value) = check(self) {
                return Ok(value);
            }
            // Also wake periodically, so progress is printed while nothing changes.
            let wake = tokio::time::Instant::now() + Duration::from_secs(2);
            if tokio::time::timeout_at(deadline.min(wake), notified)
                .await
                .is_err()
                && tokio::time::Instant::now() >= deadline
            {
                bail!("timed out after {timeout:?}");
            }
        }
    }

    fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Floor

#[derive(Default)]
struct FloorResult {
    seconds: f64,
    /// Writes the floor itself made (the simulated provider's come on top).
    writes: usize,
    requests: Requests,
    cpu: CpuDelta,
    /// Applies in flight.
    concurrency: usize,
    /// Load averages at the start.
    load: String,
}

/// The floor: what the operator path ends up with, written directly by a plain client with the
/// verbs the operator uses (POST for CAPTClusters, control planes, applies and Workspaces, a
/// merge patch for an apply's status, a server-side apply for a CAPTCluster's and a control
/// plane's status), each status once, and the same simulated provider answering the Workspaces
/// as in the scale run (its writes, annotation updates, status PUTs and connection Secrets are
/// part of both sides). Per apply: create it and its Workspace, wait until the provider has
/// applied the Workspace, write the apply's status; after the VPC apply, the CAPTCluster's
/// status, and only then the control plane's applies (a data dependency: the EKS workspace
/// reads the VPC's connection Secret); after a control plane's last apply, its endpoint, its
/// kubeconfig Secrets and its status. No finalizer patches, no reads and no other sequencing
/// (the operator creates a cluster's profiles one at a time, as AWS allows one profile change
/// at a time). `concurrency` applies are in flight at once.
async fn floor(
    settings: &Settings,
    client: &Client,
    ns: &str,
    concurrency: usize,
) -> Result<FloorResult> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (vpc_template, eks_template, profile_template) = (
        &template("vpc.yaml", ns)?,
        &template("eks-controlplane.yaml", ns)?,
        &template("fargate-profile.yaml", ns)?,
    );
    let provider = support::simulated_provider::SimulatedProvider::start_on_own_thread(
        &settings.kubeconfig,
        ns,
        Duration::ZERO,
    );
    // The templates, untimed as in the scale run.
    prepare_inputs(client, ns).await?;
    let watch = Watch::control_planes(client, ns).with_workspaces(client, ns);
    let cps_api: Api<CAPTControlPlane> = Api::namespaced(client.clone(), ns);
    let infra_api: Api<CAPTCluster> = Api::namespaced(client.clone(), ns);
    let writes = AtomicUsize::new(0);
    let count = |n: usize| writes.fetch_add(n, Ordering::Relaxed);
    let tags = initial_tags(settings);
    let load = load_now();
    let before = (
        Requests::scrape(client).await?,
        CpuSample::now(&settings.kubeconfig, 0),
    );
    let start = Instant::now();

    // Per cluster its CAPTCluster and control plane (their uids are needed for the applies'
    // owner references).
    let created: Vec<(CAPTCluster, CAPTControlPlane)> = stream::iter(0..settings.control_planes)
        .map(|i| {
            let (infra, c) = (infra_api.clone(), capt_cluster(ns, i));
            let (api, cp) = (cps_api.clone(), control_plane(ns, i, &tags));
            async move {
                let c = infra.create(&PostParams::default(), &c).await?;
                let cp = api.create(&PostParams::default(), &cp).await?;
                Ok::<_, kube::Error>((c, cp))
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    count(2 * created.len());

    // Per apply: create it and its Workspace, wait for the provider, write the apply's status.
    // The VPC apply then writes the CAPTCluster's status; a control plane's applies start once
    // its VPC is ready (the EKS workspace reads the VPC's connection Secret), and the last of
    // them writes the control plane's status. The VPC applies come first in the stream, so
    // every one has started before any control plane's apply waits for its VPC.
    let left: Vec<AtomicUsize> = created
        .iter()
        .map(|_| AtomicUsize::new(settings.profiles + 1))
        .collect();
    let vpc_ready: Vec<tokio::sync::watch::Sender<bool>> = created
        .iter()
        .map(|_| tokio::sync::watch::Sender::new(false))
        .collect();
    let vpc_applies = created
        .iter()
        .enumerate()
        .map(|(i, (c, _))| (i, vpc::render(c), vpc_template, true));
    let cp_applies = created.iter().enumerate().flat_map(|(i, (_, cp))| {
        let profiles = cp
            .spec
            .additional_fargate_profiles
            .clone()
            .unwrap_or_default();
        std::iter::once((i, eks::render(cp), eks_template, false)).chain(
            profiles
                .into_iter()
                .map(move |p| (i, fargate::render(cp, &p), profile_template, false)),
        )
    });
    let applies: Vec<(usize, WorkspaceTemplateApply, &WorkspaceTemplate, bool)> =
        vpc_applies.chain(cp_applies).collect();
    let (watch_ref, left, created_ref, vpc_ready) = (&watch, &left, &created, &vpc_ready);
    for_each_concurrent(applies, concurrency, |(i, apply, template, is_vpc)| {
        let client = client.clone();
        let (count, cps_api, infra_api) = (&count, cps_api.clone(), infra_api.clone());
        async move {
            if !is_vpc {
                let mut ready = vpc_ready[i].subscribe();
                ready.wait_for(|r| *r).await?;
            }
            let applies: Api<WorkspaceTemplateApply> = Api::namespaced(client.clone(), ns);
            // The operator's children carry the record of what was rendered; the floor's too.
            let mut apply = apply;
            capt_fargate::runtime::write::stamp(&mut apply).expect("a rendered apply serializes");
            let apply = applies.create(&PostParams::default(), &apply).await?;
            let ws_name = names::workspace_name(ns, &apply.name_any());
            let spec = capt_fargate::render::workspace::render(&apply, template, &ws_name)?;
            let mut workspace = capt_fargate::render::workspace::object(&apply, &ws_name, spec);
            capt_fargate::runtime::write::stamp(&mut workspace).expect("a rendered Workspace serializes");
            Api::<Workspace>::all(client.clone()).create(&PostParams::default(), &workspace).await?;
            let ws_ref = ObjectRef::new(&ws_name);
            let timeout = Duration::from_secs(120 + settings.control_planes as u64 * 6);
            // The outputs as the operator reports them in the apply's status: text.
            let outputs: std::collections::BTreeMap<String, String> = watch_ref
                .until(timeout, |w| {
                    let ws = w.workspaces.as_ref()?.get(&ws_ref)?;
                    capt_fargate::status::apply::workspace_applied(&ws).then(|| {
                        capt_fargate::status::apply::workspace_outputs(&ws).unwrap_or_default()
                    })
                })
                .await
                .with_context(|| format!("floor: the provider did not apply {ws_name}"))?;
            let now = Time(k8s_openapi::jiff::Timestamp::now());
            let ready = [
                WantedCondition::new(SYNCED, true, "ReconcileSuccess", ""),
                WantedCondition::new(READY, true, "Available", ""),
                WantedCondition::new("TemplateAvailable", true, "TemplateFound", ""),
            ];
            let status = WorkspaceTemplateApplyStatus {
                workspace_name: Some(ws_name.clone()),
                applied: true,
                last_applied_time: Some(now.clone()),
                last_applied_hash: Some("floor".into()),
                conditions: merge(&[], &ready, apply.metadata.generation, &now),
                outputs: Some(outputs.clone()),
                observed_generation: apply.metadata.generation,
            };
            applies.patch_status(&apply.name_any(), &PatchParams::default(), &Patch::Merge(&json!({ "status": status }))).await?;
            count(3);
            if is_vpc {
                let c = &created_ref[i].0;
                let body = json!({
                    "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
                    "kind": "CAPTCluster",
                    "status": ready_capt_cluster_status(c, &ws_name, &outputs, Some(now.clone())),
                });
                infra_api
                    .patch_status(&c.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(&body))
                    .await?;
                count(1);
                vpc_ready[i].send_replace(true);
            } else if left[i].fetch_sub(1, Ordering::AcqRel) == 1 {
                let cp = &created_ref[i].1;
                // What the operator writes from the EKS connection secret: the endpoint in the
                // spec and the two kubeconfig Secrets (a kubeconfig of the same size each).
                let endpoint = json!({ "spec": { "controlPlaneEndpoint": { "host": format!("{}.gr7.ap-northeast-1.eks.amazonaws.com", cp.name_any()), "port": 443 } } });
                cps_api.patch(&cp.name_any(), &PatchParams::default(), &Patch::Merge(&endpoint)).await?;
                for suffix in ["kubeconfig", "user-kubeconfig"] {
                    let secret: Secret = serde_json::from_value(json!({
                        "metadata": { "name": format!("{}-{suffix}", cp.name_any()), "labels": { "cluster.x-k8s.io/cluster-name": cp.name_any() } },
                        "type": "cluster.x-k8s.io/secret",
                        "stringData": { "value": "k".repeat(2600) },
                    }))?;
                    Api::<Secret>::namespaced(client.clone(), ns).create(&PostParams::default(), &secret).await?;
                }
                count(3);
                let body = json!({ "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "CAPTControlPlane", "status": ready_control_plane_status(cp) });
                cps_api
                    .patch_status(&cp.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(&body))
                    .await?;
                count(1);
            }
            Ok(())
        }
    })
    .await?;
    let seconds = start.elapsed().as_secs_f64();
    let requests = Requests::scrape(client).await?.minus(&before.0);
    let cpu = CpuSample::now(&settings.kubeconfig, 0).minus(&before.1);
    watch.stop();
    provider.stop().await;
    println!("bench:   floor {seconds:.1}s ({concurrency} in flight)");
    Ok(FloorResult {
        seconds,
        writes: writes.into_inner(),
        requests,
        cpu,
        concurrency,
        load,
    })
}

// ---------------------------------------------------------------------------------------------
// 3. Steady state and 4. memory

#[derive(Default)]
struct SteadyResult {
    /// Same window length with the converged operator idle, before the restart.
    idle: Requests,
    /// The window after the restart.
    restart: Requests,
    restart_cpu: CpuDelta,
    /// From the restart until the new process's reconcile count stopped changing.
    resync_seconds: f64,
    resync: Requests,
    resync_cpu: CpuDelta,
    resync_reconciles: f64,
    memory_first_kib: u64,
    memory_after_resync_kib: u64,
    reconciles_in_window: String,
}

async fn steady_state(
    settings: &Settings,
    client: &Client,
    ns: &str,
    slot: &mut Option<OperatorProcess>,
) -> Result<SteadyResult> {
    let mut result = SteadyResult::default();
    let before = Requests::scrape(client).await?;
    tokio::time::sleep(STEADY_WINDOW).await;
    result.idle = Requests::scrape(client).await?.minus(&before);

    let first = slot.take().expect("operator running");
    result.memory_first_kib = first.vm_hwm_kib();
    first.stop().await;

    let (before, cpu_before) = (
        Requests::scrape(client).await?,
        CpuSample::now(&settings.kubeconfig, 0),
    );
    let start = Instant::now();
    let op = OperatorProcess::start(settings, ns, 2).await?;
    // Counts for the window; then, as the resync may take longer, on until no reconcile
    // started for 5 s.
    let (mut last, mut last_change, mut window_done) = (0.0, Duration::ZERO, false);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let metrics = op.metrics().await.unwrap_or_default();
        let now = reconcile_total(&metrics);
        if now != last {
            (last, last_change) = (now, start.elapsed());
        }
        if !window_done && start.elapsed() >= STEADY_WINDOW {
            result.restart = Requests::scrape(client).await?.minus(&before);
            result.restart_cpu = CpuSample::now(&settings.kubeconfig, op.pid()).minus(&cpu_before);
            result.reconciles_in_window = operator_counters(&metrics).join(", ");
            window_done = true;
        }
        if (window_done && start.elapsed() - last_change >= Duration::from_secs(5))
            || start.elapsed() > Duration::from_secs(600)
        {
            break;
        }
    }
    result.resync_seconds = last_change.as_secs_f64();
    result.resync = Requests::scrape(client).await?.minus(&before);
    result.resync_cpu = CpuSample::now(&settings.kubeconfig, op.pid()).minus(&cpu_before);
    result.resync_reconciles = last;
    result.memory_after_resync_kib = op.vm_hwm_kib();
    *slot = Some(op);
    println!(
        "bench:   writes in {}s after restart: {} (idle window: {})",
        STEADY_WINDOW.as_secs(),
        result.restart.only(RESOURCES).writes(),
        result.idle.only(RESOURCES).writes()
    );
    Ok(result)
}

/// What the operator's cache holds of one kind at convergence, measured in this process with
/// the operator's own types and trims (`capt_fargate::runtime::cache::prepare`).
struct CacheCost {
    kind: &'static str,
    count: usize,
    /// Mean size of an object as the API server sends it (JSON).
    json_bytes: f64,
    /// Mean heap bytes of an object decoded into the operator's type, managed fields included.
    decoded_bytes: f64,
    /// Mean heap bytes of an object as the cache keeps it.
    cached_bytes: f64,
}

/// Decodes `items` (JSON as listed) into `K` and trims them as the operator's cache does,
/// counting this thread's heap bytes in between.
fn cache_cost<K: serde::de::DeserializeOwned + kube::Resource>(
    kind: &'static str,
    items: &[String],
    trim: fn(&mut K),
) -> Result<CacheCost> {
    let n = items.len().max(1) as f64;
    let json_bytes = items.iter().map(String::len).sum::<usize>() as f64 / n;
    let before = PerThread::live();
    let mut objects: Vec<K> = Vec::with_capacity(items.len());
    for item in items {
        objects.push(serde_json::from_str(item).with_context(|| format!("decoding a {kind}"))?);
    }
    let decoded = PerThread::live() - before;
    for object in &mut objects {
        capt_fargate::runtime::cache::prepare(object, trim);
    }
    let cached = PerThread::live() - before;
    drop(objects);
    Ok(CacheCost {
        kind,
        count: items.len(),
        json_bytes,
        decoded_bytes: decoded as f64 / n,
        cached_bytes: cached as f64 / n,
    })
}

/// The objects of `K` that `params` lists, each as the JSON the API server sent.
async fn listed<K>(client: &Client, ns: Option<&str>, params: &ListParams) -> Result<Vec<String>>
where
    K: kube::Resource<DynamicType = ()>,
{
    use kube::api::{ApiResource, DynamicObject};
    let resource = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let list = api.list(params).await?;
    Ok(list
        .items
        .iter()
        .map(|o| serde_json::to_string(o).expect("a listed object serializes"))
        .collect())
}

/// Per kind, what the operator's caches hold of the bench namespace at convergence.
async fn cache_costs(client: &Client, ns: &str) -> Result<Vec<CacheCost>> {
    use capt_fargate::runtime::cache::keep_all;
    let all = ListParams::default();
    let own = ListParams::default().labels(&format!(
        "{}={}",
        names::LABEL_APPLY_NAMESPACE,
        names::label_value(ns)
    ));
    let (infra, cps, applies, workspaces, secrets, templates) = (
        listed::<CAPTCluster>(client, Some(ns), &all).await?,
        listed::<CAPTControlPlane>(client, Some(ns), &all).await?,
        listed::<WorkspaceTemplateApply>(client, Some(ns), &all).await?,
        listed::<Workspace>(client, None, &own).await?,
        listed::<Secret>(client, Some(ns), &all).await?,
        listed::<WorkspaceTemplate>(client, Some(ns), &all).await?,
    );
    Ok(vec![
        cache_cost::<CAPTCluster>("CAPTCluster", &infra, keep_all)?,
        cache_cost::<CAPTControlPlane>("CAPTControlPlane", &cps, keep_all)?,
        cache_cost::<WorkspaceTemplateApply>("WorkspaceTemplateApply", &applies, keep_all)?,
        cache_cost::<Workspace>(
            "Workspace",
            &workspaces,
            capt_fargate::controller::workspace_apply::trim_workspace,
        )?,
        cache_cost::<Secret>(
            "Secret",
            &secrets,
            capt_fargate::runtime::shared::key_names_only,
        )?,
        cache_cost::<WorkspaceTemplate>("WorkspaceTemplate", &templates, keep_all)?,
    ])
}

// ---------------------------------------------------------------------------------------------
// 5. Latency

#[derive(Default)]
struct LatencyResult {
    samples: Vec<f64>,
}

impl LatencyResult {
    fn percentile(&self, p: f64) -> f64 {
        let mut v = self.samples.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }
}

/// Changes one profile's tags, one control plane at a time, and times until the provider has
/// applied the new tag (Workspace Ready for its new generation, with the tag in its varmap)
/// and the control plane reports all profiles ready for its new generation.
async fn latency(settings: &Settings, client: &Client, ns: &str) -> Result<LatencyResult> {
    anyhow::ensure!(
        settings.profiles > 0,
        "the latency measurement needs at least one additional profile"
    );
    let watch = Watch::control_planes(client, ns).with_workspaces(client, ns);
    let api: Api<CAPTControlPlane> = Api::namespaced(client.clone(), ns);
    let total = settings.total_profiles();
    let mut tags: Vec<Vec<String>> = vec![initial_tags(settings); settings.control_planes];
    let mut result = LatencyResult::default();
    // A serialised provider also plans every Ready Workspace at each poll, ahead of the change.
    let wait = Duration::from_secs(if settings.mode.serial { 600 } else { 60 });
    // Wait for both caches to hold everything: per cluster the VPC, EKS and profile Workspaces.
    watch
        .until(wait, |w| {
            let n = w.workspaces.as_ref().unwrap().state().len();
            (w.cps.state().len() == settings.control_planes
                && n == settings.control_planes * (settings.profiles + 2))
                .then_some(())
        })
        .await
        .context("latency: caches did not fill")?;
    for sample in 0..settings.latency_samples {
        let i = (sample * 37) % settings.control_planes;
        let j = sample % settings.profiles;
        tags[i][j] = format!("s{sample}");
        let ms = time_profile_change(&watch, &api, ns, i, j, &tags[i], total, wait)
            .await
            .with_context(|| format!("latency sample {sample}"))?;
        result.samples.push(ms);
    }
    watch.stop();
    println!(
        "bench:   p50 {:.0} ms, max {:.0} ms",
        result.percentile(50.0),
        result.percentile(100.0)
    );
    Ok(result)
}

/// Sets control plane `i`'s tags to `tags` (profile `j`'s changed) and times, in
/// milliseconds, until the provider has applied profile `j`'s new tag (its Workspace Ready for
/// its new generation, with the tag in its varmap) and the control plane reports all `total`
/// profiles ready for its new generation. `watch` must hold the Workspaces.
#[allow(clippy::too_many_arguments)] // one sample's coordinates
async fn time_profile_change(
    watch: &Watch,
    api: &Api<CAPTControlPlane>,
    ns: &str,
    i: usize,
    j: usize,
    tags: &[String],
    total: usize,
    wait: Duration,
) -> Result<f64> {
    let value = tags[j].clone();
    let cp = control_plane(ns, i, tags);
    let ws_name = names::workspace_name(
        ns,
        &names::profile_apply_name(&cp.name_any(), &profile_name(j)),
    );
    let start = Instant::now();
    let written = api
        .patch(
            &cp.name_any(),
            &PatchParams::apply(MANAGER),
            &Patch::Apply(&cp),
        )
        .await?;
    let generation = written.metadata.generation;
    let cp_ref = ObjectRef::new(&cp.name_any()).within(ns);
    let ws_ref = ObjectRef::new(&ws_name);
    watch
        .until(wait, |w| {
            let cp = w.cps.get(&cp_ref)?;
            let ws = w.workspaces.as_ref().unwrap().get(&ws_ref)?;
            let tag = ws
                .spec
                .for_provider
                .varmap
                .as_ref()?
                .get("tags")?
                .get("bench")?
                .as_str()?
                .to_string();
            // Applied as provider-terraform reports it: Ready, and Synced for this
            // generation (its Ready carries no observedGeneration).
            let ws_ready = capt_fargate::status::apply::workspace_applied(&ws);
            (cp.metadata.generation == generation
                && converged(&cp, total)
                && tag == value
                && ws_ready)
                .then_some(())
        })
        .await
        .with_context(|| format!("{ws_name} did not get tag {value}"))?;
    Ok(start.elapsed().as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------------------------------------
// The operator as a child process

struct OperatorProcess {
    child: Child,
    /// When it was spawned (start-up times are measured from here).
    spawned: std::time::SystemTime,
    metrics_addr: SocketAddr,
    log: PathBuf,
    /// The highest VmHWM read so far (see `vm_hwm_kib`).
    peak_kib: std::sync::atomic::AtomicU64,
}

fn free_addr() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

impl OperatorProcess {
    /// Starts `capt-fargate run` for `ns` and waits until it serves /metrics.
    async fn start(settings: &Settings, ns: &str, instance: usize) -> Result<Self> {
        let (metrics_addr, health_addr) = (free_addr()?, free_addr()?);
        let log = support::repo_root().join(format!("target/bench/operator-{instance}.log"));
        std::fs::create_dir_all(log.parent().unwrap())?;
        let log_file = std::fs::File::create(&log)?;
        // A static kubeconfig token (test only): the operator writes the kubeconfig Secrets as
        // it would with AWS credentials, and a converged operator has no token to refresh.
        let token = log.with_file_name("static-token");
        std::fs::write(&token, "bench-static-token\n")?;
        let spawned = std::time::SystemTime::now();
        let mut command = Command::new(&settings.operator_bin);
        // The kernel stops the operator when the bench dies without its cleanup (a signal):
        // a leftover operator kept retrying its gone API server and holding the bench lock.
        // SAFETY: prctl with integer arguments only, async-signal-safe between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command
            .env("CAPT_FARGATE_TEST_ONLY_STATIC_TOKEN_FILE", &token)
            .env("NO_COLOR", "1")
            .arg("run")
            .arg("--kubeconfig")
            .arg(&settings.kubeconfig)
            .args([
                "--namespace",
                ns,
                "--leader-election=false",
                "--log-format",
                "text",
                "--log-level",
                // The start-up milestones too (`capt_fargate::runtime::startup`).
                "warn,capt_fargate::startup=info",
            ])
            .arg("--metrics-addr")
            .arg(metrics_addr.to_string())
            .arg("--health-addr")
            .arg(health_addr.to_string())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", settings.operator_bin.display()))?;
        let op = OperatorProcess {
            child,
            spawned,
            metrics_addr,
            log,
            peak_kib: Default::default(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while op.metrics().await.is_err() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "operator did not serve /metrics within 30s; see {}",
                op.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(op)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size (VmHWM) in KiB, never less than an earlier reading: the kernel
    /// raises VmHWM lazily and not for pages the allocator returns with madvise, so a later
    /// reading could be lower (seen: 89.0 MiB, then 88.7 MiB).
    fn vm_hwm_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let now = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        let earlier = self
            .peak_kib
            .fetch_max(now, std::sync::atomic::Ordering::Relaxed);
        earlier.max(now)
    }

    async fn metrics(&self) -> Result<String> {
        let addr = self.metrics_addr;
        tokio::task::spawn_blocking(move || http_get(addr, "/metrics")).await?
    }

    fn log_lines(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .map(|t| {
                t.lines()
                    .filter(|l| !l.contains(capt_fargate::runtime::startup::TARGET))
                    .count()
            })
            .unwrap_or(0)
    }

    /// SIGTERM, then SIGKILL after 10 s.
    async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!("bench: operator did not stop within 10s of SIGTERM; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed HTTP response"))?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{}",
        head.lines().next().unwrap_or("")
    );
    Ok(body.to_string())
}

/// Reconciles started, both controllers together.
fn reconcile_total(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("capt_fargate_reconciles_total"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}

/// Reconcile and error counters and the reconcile duration sum and count.
fn operator_counters(metrics: &str) -> Vec<String> {
    const PREFIXES: [&str; 4] = [
        "capt_fargate_reconciles_total",
        "capt_fargate_reconcile_errors_total",
        "capt_fargate_reconcile_duration_seconds_sum",
        "capt_fargate_reconcile_duration_seconds_count",
    ];
    metrics
        .lines()
        .filter(|l| PREFIXES.iter().any(|p| l.starts_with(p)))
        .map(|l| l.trim_start_matches("capt_fargate_").to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// API server request counts and CPU time

/// `apiserver_request_total` for [`ALL_RESOURCES`], by (verb, resource, subresource, code),
/// and the seconds the API server spent on them (`apiserver_request_duration_seconds_sum`, by
/// "VERB resource[/subresource]", long-running WATCH requests left out): a request's time
/// includes its waits, so it is only a proxy for the CPU it cost, but it tells expensive
/// requests from cheap ones where counts cannot.
#[derive(Default, Clone)]
struct Requests(
    BTreeMap<(String, String, String, String), f64>,
    BTreeMap<String, f64>,
);

impl Requests {
    async fn scrape(client: &Client) -> Result<Requests> {
        let request = axum::http::Request::get("/metrics").body(vec![])?;
        let text = client.request_text(request).await?;
        let mut counts = BTreeMap::new();
        let mut seconds = BTreeMap::new();
        const DURATION: &str = "apiserver_request_duration_seconds_sum";
        for line in text.lines().filter(|l| l.starts_with(DURATION)) {
            let Some((labels, value)) = line[DURATION.len()..].rsplit_once(' ') else {
                continue;
            };
            let labels = parse_labels(labels);
            let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
            let verb = get("verb");
            if !ALL_RESOURCES.contains(&get("resource").as_str()) || verb == "WATCH" {
                continue;
            }
            let key = request_name(&verb, &get("resource"), &get("subresource"));
            *seconds.entry(key).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
        }
        for line in text
            .lines()
            .filter(|l| l.starts_with("apiserver_request_total{"))
        {
            let Some((labels, value)) = line["apiserver_request_total".len()..].rsplit_once(' ')
            else {
                continue;
            };
            let labels = parse_labels(labels);
            let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
            if !ALL_RESOURCES.contains(&get("resource").as_str()) {
                continue;
            }
            let key = (
                get("verb"),
                get("resource"),
                get("subresource"),
                get("code"),
            );
            *counts.entry(key).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
        }
        Ok(Requests(counts, seconds))
    }

    fn minus(&self, before: &Requests) -> Requests {
        let mut out = BTreeMap::new();
        for (k, v) in &self.0 {
            let d = v - before.0.get(k).copied().unwrap_or(0.0);
            if d > 0.0 {
                out.insert(k.clone(), d);
            }
        }
        let mut seconds = BTreeMap::new();
        for (k, v) in &self.1 {
            let d = v - before.1.get(k).copied().unwrap_or(0.0);
            if d > 0.0 {
                seconds.insert(k.clone(), d);
            }
        }
        Requests(out, seconds)
    }

    fn by<F: Fn(&(String, String, String, String)) -> String>(
        &self,
        key: F,
    ) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (k, v) in &self.0 {
            *out.entry(key(k)).or_insert(0.0) += v;
        }
        out
    }

    /// Only the requests for `resources`.
    fn only(&self, resources: &[&str]) -> Requests {
        Requests(
            self.0
                .iter()
                .filter(|(k, _)| resources.contains(&k.1.as_str()))
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            self.1
                .iter()
                .filter(|(k, _)| resources.iter().any(|r| request_resource(k) == *r))
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        )
    }

    /// By "VERB resource[/subresource]".
    fn by_request(&self) -> BTreeMap<String, f64> {
        self.by(|k| request_name(&k.0, &k.1, &k.2))
    }

    /// The API server's seconds, by "VERB resource[/subresource]".
    fn seconds_by_request(&self) -> &BTreeMap<String, f64> {
        &self.1
    }

    fn by_verb(&self) -> BTreeMap<String, f64> {
        self.by(|k| k.0.clone())
    }

    fn total(&self) -> f64 {
        self.0.values().fold(0.0, |a, b| a + b)
    }

    fn writes(&self) -> f64 {
        self.by_verb()
            .iter()
            .filter(|(verb, _)| is_write(verb))
            .map(|(_, v)| v)
            .fold(0.0, |a, b| a + b)
    }
}

/// "VERB resource[/subresource]", as the bench's tables name a kind of request.
fn request_name(verb: &str, resource: &str, subresource: &str) -> String {
    if subresource.is_empty() {
        format!("{verb} {resource}")
    } else {
        format!("{verb} {resource}/{subresource}")
    }
}

/// The resource of a [`request_name`].
fn request_resource(name: &str) -> &str {
    let resource = name.split_once(' ').map_or(name, |(_, r)| r);
    resource.split_once('/').map_or(resource, |(r, _)| r)
}

fn is_write(verb: &str) -> bool {
    !matches!(verb, "GET" | "LIST" | "WATCH" | "WATCHLIST" | "CONNECT")
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let inner = s.trim().trim_start_matches('{').trim_end_matches('}');
    let mut out = BTreeMap::new();
    let mut rest = inner;
    while let Some((key, after)) = rest.split_once("=\"") {
        let Some(end) = after.find('"') else { break };
        out.insert(
            key.trim_start_matches(',').to_string(),
            after[..end].to_string(),
        );
        rest = &after[end + 1..];
    }
    out
}

/// CPU seconds (user + system) of the operator, the API server, etcd and this process.
#[derive(Default, Clone)]
struct CpuSample(BTreeMap<&'static str, f64>);
#[derive(Default, Clone)]
struct CpuDelta(BTreeMap<&'static str, f64>);

impl CpuSample {
    fn now(kubeconfig: &Path, operator: u32) -> CpuSample {
        let mut m = BTreeMap::new();
        m.insert("operator", cpu_seconds(operator));
        m.insert(
            "bench (simulated provider and watcher)",
            cpu_seconds(std::process::id()),
        );
        for c in ["kube-apiserver", "etcd", "kube-controller-manager"] {
            if let Some(pid) = cluster_pid(kubeconfig, c) {
                m.insert(c, cpu_seconds(pid));
            }
        }
        CpuSample(m)
    }

    fn minus(&self, before: &CpuSample) -> CpuDelta {
        CpuDelta(
            self.0
                .iter()
                .map(|(k, v)| (*k, v - before.0.get(k).copied().unwrap_or(0.0)))
                .collect(),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Cleanup

/// Waits until `namespaces` and their Workspaces are gone: the garbage collection of a round's
/// 10,000 objects takes the control plane's CPU for a while, and the next round's measurements
/// must not share it.
async fn wait_until_gone(client: &Client, namespaces: &[String]) {
    let started = Instant::now();
    let namespace_api: Api<Namespace> = Api::all(client.clone());
    let workspaces: Api<Workspace> = Api::all(client.clone());
    loop {
        let mut left = 0;
        for ns in namespaces {
            if matches!(namespace_api.get_opt(ns).await, Ok(Some(_))) {
                left += 1;
            }
            let selector =
                ListParams::default().labels(&format!("{}={}", names::LABEL_APPLY_NAMESPACE, ns));
            left += workspaces
                .list_metadata(&selector)
                .await
                .map(|l| l.items.len())
                .unwrap_or(0);
        }
        if left == 0 {
            println!(
                "bench: the round's objects were deleted in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            return;
        }
        if started.elapsed() > Duration::from_secs(600) {
            println!("bench: {left} namespaces and Workspaces still there after 600 s; going on");
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Report

struct Machine {
    nproc: String,
    load: String,
    cluster: String,
    date: String,
    commit: String,
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

impl Machine {
    fn now(kubeconfig: &Path) -> Machine {
        let root = support::repo_root();
        let root = root.to_str().unwrap_or(".");
        let dirty = !command_output(
            "git",
            &["-C", root, "status", "--porcelain", "--untracked-files=no"],
        )
        .is_empty();
        let commit = command_output("git", &["-C", root, "rev-parse", "--short", "HEAD"]);
        Machine {
            nproc: command_output("nproc", &[]),
            cluster: if std::env::var_os("BENCH_KUBECONFIG").is_some() {
                format!(
                    "private control plane started by tests/bench ({})",
                    kubeconfig.display()
                )
            } else {
                format!(
                    "shared test control plane from tests/cluster/up ({})",
                    kubeconfig.display()
                )
            },
            load: std::fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
            date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            commit: if dirty {
                format!("{commit} (with uncommitted changes in the working tree)")
            } else {
                commit
            },
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} CPUs, load {}, commit {}",
            self.nproc, self.load, self.commit
        )
    }
}

#[derive(Default)]
struct Report {
    scale: Option<ScaleResult>,
    floor: Option<FloorResult>,
    steady: Option<SteadyResult>,
    latency: Option<LatencyResult>,
    memory_after_latency_kib: u64,
    /// What the operator's caches hold, by kind, at convergence.
    cache_costs: Vec<CacheCost>,
    operator_metrics: String,
    operator_log_lines: usize,
    rejections: usize,
    /// Every scale-and-floor pair, the first included.
    rounds: Vec<Round>,
    /// The floor at each concurrency of [`FLOOR_CURVE`] (`BENCH_FLOOR_CURVE=1`).
    floor_curve: Vec<FloorResult>,
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

impl Report {
    fn print(&self) {
        if let (Some(s), Some(f)) = (&self.scale, &self.floor) {
            println!(
                "bench: scale {:.1}s, floor {:.1}s, ratio {:.2}x",
                s.seconds,
                f.seconds,
                s.seconds / f.seconds
            );
        }
        if let Some(st) = &self.steady {
            println!(
                "bench: after restart: {:?}",
                st.restart.only(RESOURCES).by_verb()
            );
        }
        if let Some(l) = &self.latency {
            println!(
                "bench: latency p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
                l.percentile(50.0),
                l.percentile(90.0),
                l.percentile(99.0),
                l.percentile(100.0)
            );
        }
        for line in operator_counters(&self.operator_metrics) {
            println!("bench: operator {line}");
        }
    }

    fn markdown(&self, s: &Settings, start: &Machine, end: &Machine) -> String {
        let n = s.control_planes;
        let profiles = n * s.profiles;
        // Per cluster: the VPC, the EKS cluster and the additional profiles.
        let applies = n * (s.profiles + 2);
        let mut md = String::new();
        md.push_str("# Benchmarks\n\n");
        md.push_str("Generated by `tests/bench` (`examples/bench.rs`): the real local control plane (etcd, kube-apiserver, ");
        md.push_str(
            "kube-controller-manager from `tests/cluster/up`), the operator as a child process ",
        );
        md.push_str("(`target/release/capt-fargate run --leader-election=false --log-level warn`, one namespace), and the ");
        md.push_str(
            "simulated provider-terraform in the bench process, on a thread and runtime of its own, ",
        );
        match (s.mode.serial, s.mode.timing) {
            (true, Some(t)) => md.push_str(&format!(
                "**serialised** as provider-terraform with `--max-reconcile-rate {}` (`CAPT_SIM_SERIAL=1`: 1, the default; `CAPT_SIM_MAX_RECONCILE_RATE`), in scaled time: one real minute lasts {} ms (`CAPT_SIM_MINUTE_MS`); the EKS cluster takes {} min to create, each Fargate profile operation {} min, each reconcile's init and plan {} min, a Ready Workspace is planned again every {} ± {} min (`--poll`), a reconcile is killed at {} min (`--timeout`). The provider's own work for this fleet, one reconcile at a time and without polls, is {:.0} real minutes, {:.1} s here. ",
                s.mode.rate,
                t.minute.as_millis(),
                t.cluster_create,
                t.profile_operation,
                t.plan,
                t.poll,
                t.poll_jitter,
                t.timeout,
                s.serial_minutes().unwrap_or_default(),
                t.of(s.serial_minutes().unwrap_or_default()).as_secs_f64(),
            )),
            _ => md.push_str("answering at once (delay 0), reconciles concurrent. "),
        }
        md.push_str("Scale down with `BENCH_CONTROL_PLANES=10 BENCH_PROFILES=8 tests/bench`.\n\n");
        md.push_str(&format!(
            "| | |\n|---|---|\n| Date | {} |\n| Commit | {} |\n| CPUs (`nproc`) | {} |\n| Load average at start | {} |\n| Load average at end | {} |\n| Control plane | {} |\n| Clusters (CAPTCluster + CAPTControlPlane) | {n} |\n| Additional profiles each | {} ({} profiles per control plane with the 2 default ones) |\n| WorkspaceTemplateApplies / Workspaces | {applies} / {applies} |\n\n",
            start.date, start.commit, start.nproc, start.load, end.load, start.cluster, s.profiles, s.total_profiles()
        ));
        if std::env::var_os("BENCH_KUBECONFIG").is_some() {
            md.push_str("The control plane is private to the bench (tests/bench runs a copy of `tests/cluster/up` under ");
            md.push_str("`target/bench/cluster`), so `apiserver_request_total` counts only the bench, the operator and the ");
            md.push_str("control plane's own controllers; other engineers' tests (some restart the shared API server) cannot ");
            md.push_str("disturb it. The 2 CPUs are still shared with their builds and tests: see the load averages.\n\n");
        } else {
            md.push_str("The control plane is the shared one of the tests: other engineers' requests to it are included in ");
            md.push_str("`apiserver_request_total` (it has no namespace or client label); the idle window in the steady-state ");
            md.push_str("table shows that background.\n\n");
        }

        if let (Some(sc), Some(fl)) = (&self.scale, &self.floor) {
            md.push_str("## 1–2. Scale and floor\n\n");
            md.push_str("Scale: from the first apply of the clusters' CAPTClusters and control planes (32 clusters in flight) until every control plane reports ");
            md.push_str(&format!(
                "`fargateProfilesSummary: {0}/{0}` and every CAPTCluster `ready` for its current generation (watched). ",
                s.total_profiles()
            ));
            md.push_str("Floor: the same CAPTClusters, control planes, applies and Workspaces (rendered by the operator's own code) written directly by a plain client ");
            md.push_str(&format!("({} applies in flight) in a fresh namespace, with the verbs the operator uses (POST creates, a merge patch for an apply's status, ", fl.concurrency));
            md.push_str("a server-side apply for a CAPTCluster's and a control plane's status), each status once, and the same simulated provider answering its Workspaces: ");
            md.push_str("the provider's own requests (annotation updates, status PUTs, connection Secrets, reads) are on both sides. Per apply the floor creates it ");
            md.push_str("and its Workspace, waits until the provider has applied the Workspace, and writes the apply's status; after the VPC apply, the CAPTCluster's status, ");
            md.push_str("and only then the control plane's applies (the EKS workspace reads the VPC's connection Secret); after a control plane's last apply, ");
            md.push_str("its endpoint, its two kubeconfig Secrets and its status. It has no finalizer patches, no reads of its own and no other sequencing: ");
            md.push_str("the operator creates a cluster's profiles one at a time (AWS allows one profile change at a time). ");
            md.push_str("Each side runs on a clean control plane: the other side's objects are deleted, and gone, before it starts. ");
            md.push_str("Further rounds (`BENCH_ROUNDS`, default 5) repeat both with a fresh operator, provider and namespaces, the floor first in even rounds; ");
            md.push_str("one pair's ratio varies by about ±30 % here, so the verdict is the median, and the API server's CPU seconds are the less noisy comparison. ");
            md.push_str("Everything else below comes from the first round.\n\n");
            md.push_str("| | Operator | Floor |\n|---|---|---|\n");
            md.push_str(&format!(
                "| Wall time | {:.1} s | {:.1} s |\n",
                sc.seconds, fl.seconds
            ));
            md.push_str(&format!(
                "| Ratio operator / floor | {:.2}x | |\n",
                sc.seconds / fl.seconds
            ));
            if let Some(median) = median_ratio(&self.rounds) {
                md.push_str(&format!(
                    "| Median ratio over {} rounds | **{median:.2}x** (target ≤ 1.5x) | |\n",
                    self.rounds.len(),
                ));
            }
            let api = |cpu: &CpuDelta| cpu.0.get("kube-apiserver").copied().unwrap_or(0.0);
            md.push_str(&format!(
                "| API server CPU | {:.1} s | {:.1} s ({:.2}x) |\n",
                api(&sc.cpu),
                api(&fl.cpu),
                api(&sc.cpu) / api(&fl.cpu).max(0.001)
            ));
            md.push_str(&format!(
                "| Time to apply the control planes | {:.1} s | |\n",
                sc.apply_seconds
            ));
            md.push_str(&format!("| API requests (CAPTClusters, control planes, applies, templates, Workspaces, secrets, events) | {:.0} | {:.0} |\n", sc.requests.total(), fl.requests.total()));
            md.push_str(&format!(
                "| of which writes | {:.0} | {:.0} (the floor client's own: {}) |\n",
                sc.requests.writes(),
                fl.requests.writes(),
                fl.writes
            ));
            md.push_str(&format!(
                "| API requests per additional profile | {:.1} | {:.1} |\n",
                sc.requests.total() / profiles.max(1) as f64,
                fl.requests.total() / profiles.max(1) as f64
            ));
            md.push_str(&format!(
                "| Throughput | {:.1} profiles/s | {:.1} profiles/s |\n\n",
                profiles as f64 / sc.seconds,
                profiles as f64 / fl.seconds
            ));
            md.push_str("Every round (load averages at the start of each side; API server CPU seconds during each):\n\n");
            md.push_str("| Round | Order | Operator | Floor (in flight) | Ratio | API server CPU, operator / floor | Load at start, operator / floor |\n|---|---|---|---|---|---|---|\n");
            for (i, r) in self.rounds.iter().enumerate() {
                md.push_str(&format!(
                    "| {} | {} | {:.1} s | {:.1} s ({}) | {:.2}x | {:.1} s / {:.1} s = {:.2}x | {} / {} |\n",
                    i + 1,
                    if r.floor_first { "floor first" } else { "operator first" },
                    r.scale_seconds,
                    r.floor_seconds,
                    r.floor_concurrency,
                    r.ratio(),
                    r.scale_api_cpu,
                    r.floor_api_cpu,
                    r.scale_api_cpu / r.floor_api_cpu.max(0.001),
                    r.scale_load,
                    r.floor_load
                ));
            }
            md.push('\n');
            if !self.floor_curve.is_empty() {
                md.push_str("The floor's concurrency curve (first round, each on a clean control plane; the fastest is the floor above):\n\n");
                md.push_str("| Applies in flight | Wall time | API server CPU | Requests | Load at start |\n|---|---|---|---|---|\n");
                for f in &self.floor_curve {
                    md.push_str(&format!(
                        "| {} | {:.1} s | {:.1} s | {:.0} | {} |\n",
                        f.concurrency,
                        f.seconds,
                        api(&f.cpu),
                        f.requests.total(),
                        f.load
                    ));
                }
                md.push('\n');
            }
            md.push_str(
                "CPU seconds used during the scale run and the floor:\n\n| Process | Operator run, CPU s | Floor, CPU s |\n|---|---|---|\n",
            );
            for (k, v) in &sc.cpu.0 {
                let floor = fl.cpu.0.get(k).copied().unwrap_or(0.0);
                md.push_str(&format!("| {k} | {v:.1} | {floor:.1} |\n"));
            }
            md.push_str(&format!(
                "| (wall time × {} CPUs) | {:.1} |\n\n",
                start.nproc,
                sc.seconds * start.nproc.parse::<f64>().unwrap_or(1.0)
            ));
            md.push_str("API requests during the scale run (operator and simulated provider together) and the floor (floor client and simulated provider), by resource, subresource and verb:\n\n");
            md.push_str(
                "| Request | Operator run | Per control plane | Floor |\n|---|---|---|---|\n",
            );
            let (scale_requests, floor_requests) =
                (sc.requests.by_request(), fl.requests.by_request());
            let keys: std::collections::BTreeSet<&String> =
                scale_requests.keys().chain(floor_requests.keys()).collect();
            for k in keys {
                let v = scale_requests.get(k).copied().unwrap_or(0.0);
                let f = floor_requests.get(k).copied().unwrap_or(0.0);
                md.push_str(&format!(
                    "| {k} | {v:.0} | {:.1} | {f:.0} |\n",
                    v / n as f64
                ));
            }
            let code = |c: &str| {
                sc.requests
                    .0
                    .iter()
                    .filter(|(k, _)| k.3 == c)
                    .map(|(_, v)| v)
                    .fold(0.0, |a, b| a + b)
            };
            let (conflicts, not_found) = (code("409"), code("404"));
            md.push_str(&format!(
                "\nResponses 409 Conflict: {conflicts:.0}; 404 Not Found: {not_found:.0}.\n\n"
            ));
            md.push_str("Events in the namespace after the scale run, by reason (an Event object is patched for each repeat):\n\n");
            md.push_str("| Reason | Event objects | Occurrences |\n|---|---|---|\n");
            for (reason, (objects, occurrences)) in &sc.events {
                md.push_str(&format!("| {reason} | {objects} | {occurrences} |\n"));
            }
            md.push('\n');
        }

        if let Some(st) = &self.steady {
            md.push_str("## 3. Steady state\n\n");
            md.push_str(&format!(
                "API requests for captclusters, captcontrolplanes, workspacetemplateapplies, workspaces and secrets (events and leases excluded), from `apiserver_request_total`, in the {0} s after the converged operator process was replaced by a fresh one (which lists and reconciles everything), and in a {0} s window just before, with the converged operator idle. Target: zero writes.\n\n",
                STEADY_WINDOW.as_secs()
            ));
            md.push_str("| Verb | After restart | Idle (before) |\n|---|---|---|\n");
            let (restart, idle) = (st.restart.only(RESOURCES), st.idle.only(RESOURCES));
            let (r, i) = (restart.by_verb(), idle.by_verb());
            let verbs: std::collections::BTreeSet<&String> = r.keys().chain(i.keys()).collect();
            for v in verbs {
                md.push_str(&format!(
                    "| {v} | {:.0} | {:.0} |\n",
                    r.get(v).copied().unwrap_or(0.0),
                    i.get(v).copied().unwrap_or(0.0)
                ));
            }
            md.push_str(&format!(
                "| **writes** | **{:.0}** | {:.0} |\n\n",
                restart.writes(),
                idle.writes()
            ));
            md.push_str("By request, including templates and events (WATCH requests are counted when they end, so the new ");
            md.push_str("process's watches do not show):\n\n| Request | After restart | Idle (before) |\n|---|---|---|\n");
            let (r, i) = (st.restart.by_request(), st.idle.by_request());
            let keys: std::collections::BTreeSet<&String> = r.keys().chain(i.keys()).collect();
            for k in keys {
                md.push_str(&format!(
                    "| {k} | {:.0} | {:.0} |\n",
                    r.get(k).copied().unwrap_or(0.0),
                    i.get(k).copied().unwrap_or(0.0)
                ));
            }
            md.push_str(&format!(
                "\nThe new process in the window: {}; CPU {:.1} s (API server {:.1} s).\n\n",
                st.reconciles_in_window,
                st.restart_cpu.0.get("operator").copied().unwrap_or(0.0),
                st.restart_cpu
                    .0
                    .get("kube-apiserver")
                    .copied()
                    .unwrap_or(0.0),
            ));
            let resync = st.resync.only(RESOURCES);
            md.push_str(&format!(
                "The whole resync (until no reconcile started for 5 s) took **{:.1} s**: {:.0} reconciles, {:.0} requests for the four resources ({:.0} writes) plus {:.0} for templates and events; CPU: operator {:.1} s, API server {:.1} s, etcd {:.1} s.\n\n",
                st.resync_seconds,
                st.resync_reconciles,
                resync.total(),
                resync.writes(),
                st.resync.total() - resync.total(),
                st.resync_cpu.0.get("operator").copied().unwrap_or(0.0),
                st.resync_cpu.0.get("kube-apiserver").copied().unwrap_or(0.0),
                st.resync_cpu.0.get("etcd").copied().unwrap_or(0.0),
            ));

            md.push_str("## 4. Memory\n\nPeak RSS (`VmHWM` of `/proc/<pid>/status`) of the operator process.\n\n");
            md.push_str("| When | Peak RSS |\n|---|---|\n");
            if let Some(sc) = &self.scale {
                md.push_str(&format!(
                    "| First process, at convergence | {} |\n",
                    mib(sc.memory_kib)
                ));
            }
            md.push_str(&format!(
                "| First process, after {} s idle | {} |\n",
                STEADY_WINDOW.as_secs(),
                mib(st.memory_first_kib)
            ));
            md.push_str(&format!(
                "| Second process, {} s after start (full resync) | {} |\n",
                STEADY_WINDOW.as_secs(),
                mib(st.memory_after_resync_kib)
            ));
            md.push_str(&format!(
                "| Second process, after the latency runs | {} |\n\n",
                mib(self.memory_after_latency_kib)
            ));
            if let Some(sc) = &self.scale {
                md.push_str(&format!(
                    "Fixed base: {} (the first process once it served `/metrics`, before the control planes).\n\n",
                    mib(sc.memory_start_kib)
                ));
            }
            if !self.cache_costs.is_empty() {
                md.push_str("What the caches hold at convergence, by kind: each object of the namespace as listed, decoded into the operator's type and trimmed as its cache does (`runtime::cache::prepare`), counted by a heap-counting allocator in the bench process (the allocator's own overhead and the maps around the objects not included):\n\n");
                md.push_str("| Kind | Objects | JSON bytes each | Heap bytes each, decoded | Heap bytes each, cached | Cached in all |\n|---|---|---|---|---|---|\n");
                let mut total = 0.0;
                for c in &self.cache_costs {
                    let all = c.cached_bytes * c.count as f64;
                    total += all;
                    md.push_str(&format!(
                        "| {} | {} | {:.0} | {:.0} | {:.0} | {:.1} MiB |\n",
                        c.kind,
                        c.count,
                        c.json_bytes,
                        c.decoded_bytes,
                        c.cached_bytes,
                        all / 1048576.0
                    ));
                }
                md.push_str(&format!(
                    "| all | | | | | {:.1} MiB |\n\n",
                    total / 1048576.0
                ));
            }
        }

        if let Some(l) = &self.latency {
            md.push_str("## 5. Latency of a profile change\n\n");
            md.push_str(&format!(
                "{} times: one control plane's profile gets a new `tags` value (in-place update; server-side apply of the control plane), timed until the profile's Workspace has the new tag in `spec.forProvider.varmap.tags` and is Ready for its new generation, and the control plane reports `{}/{}` for its new generation. A different control plane each time.\n\n",
                l.samples.len(),
                s.total_profiles(),
                s.total_profiles()
            ));
            md.push_str("| p50 | p90 | p99 | max |\n|---|---|---|---|\n");
            md.push_str(&format!(
                "| {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |\n\n",
                l.percentile(50.0),
                l.percentile(90.0),
                l.percentile(99.0),
                l.percentile(100.0)
            ));
        }

        md.push_str("## 6. Operator metrics\n\n");
        md.push_str("From the operator's `/metrics`: the first process at convergence (scale run), and the second process after the restart window and the latency runs.\n\n");
        md.push_str("| Process | Sample |\n|---|---|\n");
        if let Some(sc) = &self.scale {
            for line in operator_counters(&sc.operator_metrics) {
                md.push_str(&format!("| first | `{line}` |\n"));
            }
        }
        for line in operator_counters(&self.operator_metrics) {
            md.push_str(&format!("| second | `{line}` |\n"));
        }
        md.push_str(&format!(
            "\nLog lines at `warn` or above from the second process: {}. ResourceInUseException rejections seen by the simulated provider: {}.\n",
            self.operator_log_lines, self.rejections
        ));
        md
    }
}

/// Writes the generated report, keeping a hand-written analysis section of the old file.
fn write_benchmarks(path: &Path, generated: &str) -> Result<()> {
    const MARKER: &str = "## Analysis";
    let kept = std::fs::read_to_string(path)
        .ok()
        .and_then(|old| old.find(MARKER).map(|i| old[i..].to_string()));
    let mut text = generated.to_string();
    if let Some(kept) = kept {
        text.push('\n');
        text.push_str(&kept);
    }
    std::fs::write(path, text)?;
    Ok(())
}
