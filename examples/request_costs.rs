//! What each kind of API request costs the local real control plane (`tests/cluster/up`):
//! kube-apiserver (and etcd) CPU seconds from /proc/<pid>/stat, for N requests of one kind
//! with a fixed number in flight, minus the idle background CPU of the same processes.
//!
//! `cargo run --release --example request_costs`; REQUEST_COSTS_N (default 600),
//! REQUEST_COSTS_IN_FLIGHT (default 32), REQUEST_COSTS_ROUNDS (default 1),
//! REQUEST_COSTS_KUBECONFIG (a running control plane; default: `tests/cluster/up`),
//! REQUEST_COSTS_WATCHERS (default 0: extra watches of each kind the operator watches, to see
//! what watch fan-out adds).
//!
//! Every kind runs in a fresh namespace of its own (deleted at the end, together with the
//! cluster-scoped Workspaces it created). Each window is the requests plus a 1 s tail (so that
//! watch fan-out to the controller manager is counted); the idle baseline rate is subtracted
//! for the whole window. Wall time is the requests only.

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use common::{
    cleanup, cluster_pid, cpu_seconds, env_usize, install_crds, ready_control_plane_status,
    template,
};

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event as RecorderEvent, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};

use capt_fargate::api::{
    CAPTControlPlane, FargateProfile, Workspace, WorkspaceTemplate, WorkspaceTemplateApply,
};
use capt_fargate::names;
use capt_fargate::render::fargate;

const MANAGER: &str = "capt-request-costs";
const FINALIZER: &str = "request-costs.example.com/finalizer";
const PROFILES: usize = 8;
const TAIL: Duration = Duration::from_secs(1);
const IDLE_WINDOW: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// CPU

#[derive(Clone, Copy)]
struct Pids {
    apiserver: u32,
    etcd: u32,
}

#[derive(Clone, Copy, Default)]
struct Cpu {
    apiserver: f64,
    etcd: f64,
    me: f64,
}

impl Pids {
    fn sample(&self) -> Cpu {
        Cpu {
            apiserver: cpu_seconds(self.apiserver),
            etcd: cpu_seconds(self.etcd),
            me: cpu_seconds(std::process::id()),
        }
    }
}

impl Cpu {
    fn minus(&self, o: &Cpu) -> Cpu {
        Cpu {
            apiserver: self.apiserver - o.apiserver,
            etcd: self.etcd - o.etcd,
            me: self.me - o.me,
        }
    }
}

/// CPU seconds per second of the idle control plane.
async fn idle_rate(pids: Pids) -> Cpu {
    let before = pids.sample();
    let start = Instant::now();
    tokio::time::sleep(IDLE_WINDOW).await;
    let d = pids.sample().minus(&before);
    let s = start.elapsed().as_secs_f64();
    Cpu {
        apiserver: d.apiserver / s,
        etcd: d.etcd / s,
        me: d.me / s,
    }
}

// ---------------------------------------------------------------------------------------------
// Measurement

struct Row {
    kind: String,
    n: usize,
    wall: f64,
    window: f64,
    cpu: Cpu,
}

struct Bench {
    pids: Pids,
    in_flight: usize,
    rows: Vec<Row>,
}

impl Bench {
    /// Runs `f(i)` for i in 0..n with `in_flight` at a time; returns the results by i.
    async fn measure<T, F, Fut>(&mut self, kind: &str, n: usize, f: F) -> Result<Vec<T>>
    where
        F: Fn(usize) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        tokio::time::sleep(Duration::from_millis(1500)).await; // let the previous kind settle
        let before = self.pids.sample();
        let start = Instant::now();
        let mut out: Vec<(usize, T)> = stream::iter(0..n)
            .map(|i| {
                let fut = f(i);
                async move { fut.await.map(|t| (i, t)) }
            })
            .buffer_unordered(self.in_flight)
            .try_collect()
            .await
            .with_context(|| kind.to_string())?;
        let wall = start.elapsed().as_secs_f64();
        tokio::time::sleep(TAIL).await;
        let window = start.elapsed().as_secs_f64();
        let cpu = self.pids.sample().minus(&before);
        out.sort_by_key(|(i, _)| *i);
        println!(
            "request_costs: {kind:<58} n={n} wall {wall:6.2}s  apiserver {:6.2}s  etcd {:5.2}s  client {:5.2}s",
            cpu.apiserver, cpu.etcd, cpu.me
        );
        self.rows.push(Row {
            kind: kind.to_string(),
            n,
            wall,
            window,
            cpu,
        });
        Ok(out.into_iter().map(|(_, t)| t).collect())
    }
}

// ---------------------------------------------------------------------------------------------
// Objects

fn control_plane(ns: &str, name: &str) -> CAPTControlPlane {
    let profiles: Vec<Value> = (0..PROFILES)
        .map(|j| {
            json!({
                "name": format!("p{j}"),
                "workspaceTemplateRef": { "name": "eks-fargate-profile" },
                "selectors": [{ "namespace": format!("workload-{j}") }],
                "tags": { "bench": "initial" },
            })
        })
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1",
        "kind": "CAPTControlPlane",
        "metadata": { "name": name, "namespace": ns },
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

fn profile(cp: &CAPTControlPlane, j: usize) -> FargateProfile {
    cp.spec
        .additional_fargate_profiles
        .as_ref()
        .expect("profiles")[j]
        .clone()
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

fn workspace_for(
    apply: &WorkspaceTemplateApply,
    tpl: &WorkspaceTemplate,
    ns: &str,
) -> Result<Workspace> {
    let ws_name = names::workspace_name(ns, &apply.name_any());
    let spec = capt_fargate::render::workspace::render(apply, tpl, &ws_name)?;
    Ok(capt_fargate::render::workspace::object(
        apply, &ws_name, spec,
    ))
}

fn secret(ns: &str, name: &str) -> Secret {
    let data: BTreeMap<String, ByteString> = [
        ("cluster_name", name.to_string()),
        (
            "cluster_endpoint",
            format!(
                "https://{}.gr7.ap-northeast-1.eks.amazonaws.com",
                names::short_hash(name, 16)
            ),
        ),
        (
            "cluster_certificate_authority_data",
            "TFMwdExTMUNSVWRKVGlCRFJWSlVTVVpKUTBGVVJTMHRMUzB0".repeat(8),
        ),
        (
            "oidc_provider_arn",
            "arn:aws:iam::123456789012:oidc-provider/oidc.eks.ap-northeast-1.amazonaws.com/id/SIM"
                .into(),
        ),
        ("fargate_profile_status", "ACTIVE".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
    .collect();
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        type_: Some("connection.crossplane.io/v1alpha1".into()),
        data: Some(data),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::main]
async fn main() -> Result<()> {
    let n = env_usize("REQUEST_COSTS_N", 600);
    let in_flight = env_usize("REQUEST_COSTS_IN_FLIGHT", 32);
    let rounds = env_usize("REQUEST_COSTS_ROUNDS", 1);
    // REQUEST_COSTS_KUBECONFIG: an already running control plane; otherwise tests/cluster/up.
    let kubeconfig = match std::env::var_os("REQUEST_COSTS_KUBECONFIG") {
        Some(path) => std::path::PathBuf::from(path),
        None => support::cluster::kubeconfig().await,
    };
    let client = support::cluster::client_from(&kubeconfig).await;
    install_crds(&client).await?;
    let pids = Pids {
        apiserver: cluster_pid(&kubeconfig, "kube-apiserver").context("kube-apiserver pid")?,
        etcd: cluster_pid(&kubeconfig, "etcd").context("etcd pid")?,
    };
    println!(
        "request_costs: n={n}, {in_flight} in flight, {rounds} round(s); kubeconfig {}",
        kubeconfig.display()
    );
    for round in 1..=rounds {
        let ns = support::TestNamespace::new(&client, "capt-reqcost").await;
        let mut bench = Bench {
            pids,
            in_flight,
            rows: Vec::new(),
        };
        let idle_before = idle_rate(pids).await;
        println!(
            "request_costs: round {round}, namespace {}, idle apiserver {:.3} CPU s/s, etcd {:.3}",
            ns.name, idle_before.apiserver, idle_before.etcd
        );
        // REQUEST_COSTS_WATCHERS: extra watchers of each kind, to see what fan-out costs.
        let watchers: Vec<_> = (0..env_usize("REQUEST_COSTS_WATCHERS", 0))
            .flat_map(|_| extra_watchers(&client, &ns.name))
            .collect();
        let result = run(&mut bench, &client, &ns.name, n).await;
        watchers.iter().for_each(|w| w.abort());
        let idle_after = idle_rate(pids).await;
        println!(
            "request_costs: idle after: apiserver {:.3} CPU s/s, etcd {:.3}",
            idle_after.apiserver, idle_after.etcd
        );
        cleanup(&client, &ns.name).await;
        let name = ns.name.clone();
        ns.delete().await;
        if round < rounds {
            // The namespace controller's deletions would otherwise load the next round.
            wait_gone(&client, &name).await;
        }
        result?;
        let idle = Cpu {
            apiserver: (idle_before.apiserver + idle_after.apiserver) / 2.0,
            etcd: (idle_before.etcd + idle_after.etcd) / 2.0,
            me: 0.0,
        };
        report(&bench.rows, &idle, round, in_flight);
    }
    Ok(())
}

/// One watch of each kind the operator watches, events decoded and dropped.
fn extra_watchers(client: &Client, ns: &str) -> Vec<tokio::task::JoinHandle<()>> {
    use kube::runtime::watcher;
    fn spawn<K>(api: Api<K>) -> tokio::task::JoinHandle<()>
    where
        K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    {
        tokio::spawn(async move {
            watcher(api, watcher::Config::default().any_semantic())
                .for_each(|_| async {})
                .await
        })
    }
    vec![
        spawn(Api::<Secret>::namespaced(client.clone(), ns)),
        spawn(Api::<WorkspaceTemplateApply>::namespaced(
            client.clone(),
            ns,
        )),
        spawn(Api::<Workspace>::all(client.clone())),
        spawn(Api::<CAPTControlPlane>::namespaced(client.clone(), ns)),
    ]
}

fn report(rows: &[Row], idle: &Cpu, round: usize, in_flight: usize) {
    println!();
    println!(
        "## Round {round}: idle baseline apiserver {:.1} ms/s, etcd {:.1} ms/s; {in_flight} in flight",
        idle.apiserver * 1000.0,
        idle.etcd * 1000.0
    );
    println!();
    println!(
        "| Kind | N | apiserver CPU s (raw) | apiserver CPU ms/req (baseline-subtracted) | etcd CPU ms/req (baseline-subtracted) | wall s | wall ms/req | req/s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        let api = (r.cpu.apiserver - idle.apiserver * r.window) * 1000.0 / r.n as f64;
        let etcd = (r.cpu.etcd - idle.etcd * r.window) * 1000.0 / r.n as f64;
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |",
            r.kind,
            r.n,
            r.cpu.apiserver,
            api,
            etcd,
            r.wall,
            r.wall * 1000.0 / r.n as f64,
            r.n as f64 / r.wall
        );
    }
    println!();
}

async fn run(b: &mut Bench, client: &Client, ns: &str, n: usize) -> Result<()> {
    let cps: Api<CAPTControlPlane> = Api::namespaced(client.clone(), ns);
    let applies: Api<WorkspaceTemplateApply> = Api::namespaced(client.clone(), ns);
    let workspaces: Api<Workspace> = Api::all(client.clone());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let ssa = PatchParams::apply(MANAGER).force();
    let tpl = &template("fargate-profile.yaml", ns)?;

    // 1. POST CAPTControlPlane.
    let posted: Vec<CAPTControlPlane> = b
        .measure("1 POST CAPTControlPlane (8 profiles)", n, |i| {
            let (cps, cp) = (cps.clone(), control_plane(ns, &format!("post-{i:04}")));
            async move { Ok(cps.create(&PostParams::default(), &cp).await?) }
        })
        .await?;
    // 2. SSA creating CAPTControlPlane.
    let applied: Vec<CAPTControlPlane> = b
        .measure("2 SSA APPLY create CAPTControlPlane (8 profiles)", n, |i| {
            let (cps, cp, ssa) = (
                cps.clone(),
                control_plane(ns, &format!("ssa-{i:04}")),
                ssa.clone(),
            );
            async move { Ok(cps.patch(&cp.name_any(), &ssa, &Patch::Apply(&cp)).await?) }
        })
        .await?;
    // 3. Status SSA on CAPTControlPlane.
    b.measure(
        "3 SSA APPLY status CAPTControlPlane (10 profiles + conditions)",
        n,
        |i| {
            let (cps, cp, ssa) = (cps.clone(), &posted[i], ssa.clone());
            let body = strip_nulls(json!({
                "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1",
                "kind": "CAPTControlPlane",
                "metadata": { "name": cp.name_any() },
                "status": ready_control_plane_status(cp),
            }));
            async move {
                cps.patch_status(&cp.name_any(), &ssa, &Patch::Apply(&body))
                    .await?;
                Ok(())
            }
        },
    )
    .await?;
    // 4. Status merge patch on CAPTControlPlane.
    b.measure(
        "4 MERGE PATCH status CAPTControlPlane (same status)",
        n,
        |i| {
            let (cps, cp) = (cps.clone(), &applied[i]);
            let body = json!({ "status": ready_control_plane_status(cp) });
            async move {
                cps.patch_status(
                    &cp.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&body),
                )
                .await?;
                Ok(())
            }
        },
    )
    .await?;
    // 5. POST WorkspaceTemplateApply.
    let wta_posted: Vec<WorkspaceTemplateApply> = b
        .measure("5 POST WorkspaceTemplateApply", n, |i| {
            let (applies, wta) = (
                applies.clone(),
                fargate::render(&posted[i], &profile(&posted[i], 0)),
            );
            async move { Ok(applies.create(&PostParams::default(), &wta).await?) }
        })
        .await?;
    // 6. SSA creating WorkspaceTemplateApply.
    let wta_rendered: Vec<WorkspaceTemplateApply> = applied
        .iter()
        .map(|cp| fargate::render(cp, &profile(cp, 0)))
        .collect();
    let wta_applied: Vec<WorkspaceTemplateApply> = b
        .measure("6 SSA APPLY create WorkspaceTemplateApply", n, |i| {
            let (applies, wta, ssa) = (applies.clone(), &wta_rendered[i], ssa.clone());
            async move {
                Ok(applies
                    .patch(&wta.name_any(), &ssa, &Patch::Apply(wta))
                    .await?)
            }
        })
        .await?;
    // 7. POST Workspace.
    let ws_posted: Vec<Workspace> = b
        .measure("7 POST Workspace (module text)", n, |i| {
            let workspaces = workspaces.clone();
            let ws = workspace_for(&wta_posted[i], tpl, ns);
            async move { Ok(workspaces.create(&PostParams::default(), &ws?).await?) }
        })
        .await?;
    // 8. SSA creating Workspace.
    let ws_applied: Vec<Workspace> = b
        .measure("8 SSA APPLY create Workspace (module text)", n, |i| {
            let (workspaces, ssa) = (workspaces.clone(), ssa.clone());
            let ws = workspace_for(&wta_applied[i], tpl, ns);
            async move {
                let ws = ws?;
                Ok(workspaces
                    .patch(&ws.name_any(), &ssa, &Patch::Apply(&ws))
                    .await?)
            }
        })
        .await?;
    // 9. GETs.
    b.measure("9a GET Workspace", n, |i| {
        let (workspaces, name) = (workspaces.clone(), ws_applied[i].name_any());
        async move {
            workspaces.get(&name).await?;
            Ok(())
        }
    })
    .await?;
    b.measure("9b GET CAPTControlPlane", n, |i| {
        let (cps, name) = (cps.clone(), posted[i].name_any());
        async move {
            cps.get(&name).await?;
            Ok(())
        }
    })
    .await?;
    // 10. Finalizer merge patch on Workspace.
    b.measure("10 MERGE PATCH add finalizer to Workspace", n, |i| {
        let (workspaces, name) = (workspaces.clone(), ws_posted[i].name_any());
        async move {
            let patch = json!({ "metadata": { "finalizers": [FINALIZER] } });
            workspaces
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            Ok(())
        }
    })
    .await?;
    // 10b. Finalizer PUT on Workspace (crossplane-runtime's APIFinalizer uses Update).
    b.measure("10b PUT add finalizer to Workspace", n, |i| {
        let workspaces = workspaces.clone();
        let mut ws = ws_applied[i].clone();
        async move {
            ws.metadata.managed_fields = None;
            ws.metadata.finalizers = Some(vec![FINALIZER.to_string()]);
            workspaces
                .replace(&ws.name_any(), &PostParams::default(), &ws)
                .await?;
            Ok(())
        }
    })
    .await?;
    // 10c-e. Workspace status: SSA, merge patch, PUT (crossplane-runtime uses Status().Update()).
    let ws_status = json!({ "atProvider": { "checksum": "0123456789abcdef" }, "conditions": [
        { "type": "Ready", "status": "True", "reason": "Available", "lastTransitionTime": "2026-11-29T00:00:00Z" },
        { "type": "Synced", "status": "True", "reason": "ReconcileSuccess", "lastTransitionTime": "2026-11-29T00:00:00Z" } ] });
    b.measure("10c SSA APPLY status Workspace", n, |i| {
        let (workspaces, name, ssa) = (workspaces.clone(), ws_posted[i].name_any(), ssa.clone());
        let body = json!({ "apiVersion": "tf.upbound.io/v1beta1", "kind": "Workspace",
            "metadata": { "name": name }, "status": ws_status });
        async move {
            workspaces
                .patch_status(&name, &ssa, &Patch::Apply(&body))
                .await?;
            Ok(())
        }
    })
    .await?;
    b.measure("10d MERGE PATCH status Workspace", n, |i| {
        let (workspaces, name) = (workspaces.clone(), ws_applied[i].name_any());
        let body = json!({ "status": ws_status });
        async move {
            workspaces
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await?;
            Ok(())
        }
    })
    .await?;
    let ws_fresh: Vec<Workspace> = b
        .measure("9c GET Workspace (for the PUT)", n, |i| {
            let (workspaces, name) = (workspaces.clone(), ws_posted[i].name_any());
            async move { Ok(workspaces.get(&name).await?) }
        })
        .await?;
    b.measure("10e PUT status Workspace", n, |i| {
        let workspaces = workspaces.clone();
        let mut ws = ws_fresh[i].clone();
        ws.status =
            serde_json::from_value(json!({ "atProvider": { "checksum": "fedcba9876543210" } }))
                .ok();
        let name = ws_fresh[i].name_any();
        async move {
            workspaces
                .replace_status(&name, &PostParams::default(), &ws)
                .await?;
            Ok(())
        }
    })
    .await?;
    // 11. Events.
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: MANAGER.into(),
            instance: None,
        },
    );
    let event = |i: usize| RecorderEvent {
        type_: EventType::Normal,
        reason: format!("BenchReason{i}"),
        note: Some(format!(
            "control plane {i} reconciled: 10/10 profiles ready"
        )),
        action: "Reconcile".into(),
        secondary: None,
    };
    let references: Vec<_> = posted
        .iter()
        .chain(applied.iter())
        .map(|cp| cp.object_ref(&()))
        .collect();
    b.measure("11a POST Event (Recorder, new event)", n, |i| {
        let (recorder, ev, reference) = (recorder.clone(), event(i), &references[i]);
        async move { Ok(recorder.publish(&ev, reference).await?) }
    })
    .await?;
    b.measure("11b PATCH Event (Recorder, series update)", n, |i| {
        let (recorder, ev, reference) = (recorder.clone(), event(i), &references[i]);
        async move { Ok(recorder.publish(&ev, reference).await?) }
    })
    .await?;
    // 12. Secrets.
    b.measure("12a SSA APPLY create Secret (5 keys)", n, |i| {
        let (secrets, s, ssa) = (
            secrets.clone(),
            secret(ns, &format!("ssa-secret-{i:04}")),
            ssa.clone(),
        );
        async move {
            secrets
                .patch(&s.name_any(), &ssa, &Patch::Apply(&s))
                .await?;
            Ok(())
        }
    })
    .await?;
    b.measure("12b POST Secret (5 keys)", n, |i| {
        let (secrets, s) = (secrets.clone(), secret(ns, &format!("post-secret-{i:04}")));
        async move {
            secrets.create(&PostParams::default(), &s).await?;
            Ok(())
        }
    })
    .await?;
    // Filler applies (unmeasured) so the namespace holds ~3n applies for the LIST.
    stream::iter(0..n)
        .map(|i| {
            let (applies, wta) = (
                applies.clone(),
                fargate::render(&posted[i], &profile(&posted[i], 1)),
            );
            async move {
                applies
                    .create(&PostParams::default(), &wta)
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(b.in_flight)
        .try_collect::<Vec<()>>()
        .await
        .context("filler applies")?;
    let count = applies
        .list_metadata(&ListParams::default())
        .await?
        .items
        .len();
    // 13. LIST with a label selector (one control plane's applies: 1 or 2 objects).
    let kind = format!("13 LIST WorkspaceTemplateApplies, label selector ({count} in ns)");
    let matched: Vec<usize> = b
        .measure(&kind, n, |i| {
            let applies = applies.clone();
            let cp = if i % 2 == 0 { &posted[i] } else { &applied[i] };
            let lp = ListParams::default().labels(&format!(
                "{}={}",
                names::LABEL_CONTROL_PLANE,
                names::label_value(&cp.name_any())
            ));
            async move { Ok(applies.list(&lp).await?.items.len()) }
        })
        .await?;
    println!(
        "request_costs:   LIST returned {} objects in total",
        matched.iter().sum::<usize>()
    );
    // 14. No-op SSA of an identical WorkspaceTemplateApply.
    b.measure(
        "14 SSA APPLY no-op WorkspaceTemplateApply (identical)",
        n,
        |i| {
            let (applies, wta, ssa) = (applies.clone(), &wta_rendered[i], ssa.clone());
            async move {
                applies
                    .patch(&wta.name_any(), &ssa, &Patch::Apply(wta))
                    .await?;
                Ok(())
            }
        },
    )
    .await?;
    Ok(())
}

/// Waits (up to 5 minutes) until the namespace is gone.
async fn wait_gone(client: &Client, ns: &str) {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline && api.get_opt(ns).await.ok().flatten().is_some() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
