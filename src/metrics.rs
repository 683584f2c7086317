//! Prometheus metrics: reconciles, errors, durations and Fargate profiles by phase.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::api::{FargateProfilePhase, FargateProfileStatus};
use crate::runtime::lock;

/// Which controller a sample belongs to.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    /// `controlplane` or `workspacetemplateapply`.
    pub controller: &'static str,
}

/// A failed reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Controller name.
    pub controller: &'static str,
    /// Error kind, see `Error::metric_label`.
    pub error: &'static str,
}

/// Fargate profiles in one phase.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    /// Phase name.
    pub phase: &'static str,
}

/// All metrics of the operator.
pub struct Metrics {
    /// The registry served at /metrics.
    pub registry: Registry,
    reconciles: Family<ControllerLabel, Counter>,
    failures: Family<ErrorLabels, Counter>,
    duration: Family<ControllerLabel, Histogram>,
    profiles: Family<PhaseLabel, Gauge>,
    /// Profile phases per control plane, summed into `profiles`.
    per_control_plane: Mutex<ProfilePhases>,
}

const PHASES: [(FargateProfilePhase, &str); 5] = [
    (FargateProfilePhase::Pending, "Pending"),
    (FargateProfilePhase::Creating, "Creating"),
    (FargateProfilePhase::Ready, "Ready"),
    (FargateProfilePhase::Deleting, "Deleting"),
    (FargateProfilePhase::Failed, "Failed"),
];

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("capt_fargate");
        let reconciles = Family::<ControllerLabel, Counter>::default();
        let failures = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<ControllerLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        });
        let profiles = Family::<PhaseLabel, Gauge>::default();
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by error kind",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciles",
            duration.clone(),
        );
        registry.register(
            "fargate_profiles",
            "Fargate profiles by phase",
            profiles.clone(),
        );
        // Every series exists from the start, so dashboards and alerts see zeros, not gaps.
        for controller in ["controlplane", "workspacetemplateapply"] {
            let _ = reconciles.get_or_create(&ControllerLabel { controller });
            let _ = duration.get_or_create(&ControllerLabel { controller });
        }
        for (_, phase) in PHASES {
            let _ = profiles.get_or_create(&PhaseLabel { phase });
        }
        Metrics {
            registry,
            reconciles,
            failures,
            duration,
            profiles,
            per_control_plane: Mutex::default(),
        }
    }
}

/// Records the duration of a reconcile when dropped.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    controller: &'static str,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        let label = ControllerLabel {
            controller: self.controller,
        };
        self.metrics
            .duration
            .get_or_create(&label)
            .observe(self.start.elapsed().as_secs_f64());
    }
}

impl Metrics {
    /// Counts a reconcile and times it until the guard drops.
    pub fn reconcile(&self, controller: &'static str) -> ReconcileTimer<'_> {
        crate::runtime::startup::reconcile_started(controller);
        self.reconciles
            .get_or_create(&ControllerLabel { controller })
            .inc();
        ReconcileTimer {
            metrics: self,
            controller,
            start: Instant::now(),
        }
    }

    /// Counts a failed reconcile.
    pub fn failure(&self, controller: &'static str, error: &'static str) {
        self.failures
            .get_or_create(&ErrorLabels { controller, error })
            .inc();
    }

    /// Reconciles started so far by `controller`.
    pub fn reconcile_count(&self, controller: &'static str) -> u64 {
        self.reconciles
            .get_or_create(&ControllerLabel { controller })
            .get()
    }

    /// Replaces the profile phases of one control plane (`namespace/name`; none forgets it).
    pub fn set_profiles(&self, control_plane: String, statuses: &[FargateProfileStatus]) {
        let mut map = lock(&self.per_control_plane);
        let phases: Vec<FargateProfilePhase> = statuses.iter().filter_map(|s| s.phase).collect();
        if phases.is_empty() {
            map.forget(&control_plane);
        } else {
            map.0.insert(control_plane, phases);
        }
        self.publish_profiles(&map);
    }

    /// Forgets the profile phases of a control plane that is gone (`namespace/name`).
    pub fn forget_profiles(&self, control_plane: &str) {
        let mut map = lock(&self.per_control_plane);
        map.forget(control_plane);
        self.publish_profiles(&map);
    }

    fn publish_profiles(&self, map: &ProfilePhases) {
        for (phase, name) in PHASES {
            let count = map.0.values().flatten().filter(|p| **p == phase).count();
            self.profiles
                .get_or_create(&PhaseLabel { phase: name })
                .set(count as i64);
        }
    }

    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The profile phases of each control plane (by `namespace/name`), owned by [`Metrics`].
#[derive(Default)]
struct ProfilePhases(BTreeMap<String, Vec<FargateProfilePhase>>);

impl ProfilePhases {
    /// Forgets a control plane that is gone.
    fn forget(&mut self, control_plane: &str) {
        self.0.remove(control_plane);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_by_phase_are_summed_over_control_planes() {
        let m = Metrics::default();
        let s = |phase| FargateProfileStatus {
            name: "p".into(),
            phase: Some(phase),
            ..Default::default()
        };
        m.set_profiles(
            "a".into(),
            &[
                s(FargateProfilePhase::Ready),
                s(FargateProfilePhase::Creating),
            ],
        );
        m.set_profiles("b".into(), &[s(FargateProfilePhase::Ready)]);
        let text = m.encode();
        assert!(
            text.contains("capt_fargate_fargate_profiles{phase=\"Ready\"} 2"),
            "{text}"
        );
        m.set_profiles("a".into(), &[]);
        assert!(
            m.encode()
                .contains("capt_fargate_fargate_profiles{phase=\"Ready\"} 1")
        );
        let _t = m.reconcile("controlplane");
        assert_eq!(m.reconcile_count("controlplane"), 1);
    }

    #[test]
    fn forgetting_a_control_plane_leaves_no_entry_behind() {
        let m = Metrics::default();
        let ready = FargateProfileStatus {
            name: "p".into(),
            phase: Some(FargateProfilePhase::Ready),
            ..Default::default()
        };
        m.set_profiles("ns/a".into(), std::slice::from_ref(&ready));
        m.set_profiles("ns/b".into(), &[ready]);
        m.forget_profiles("ns/a");
        assert_eq!(lock(&m.per_control_plane).0.len(), 1);
        assert!(
            m.encode()
                .contains("capt_fargate_fargate_profiles{phase=\"Ready\"} 1")
        );
        m.forget_profiles("ns/b");
        assert!(lock(&m.per_control_plane).0.is_empty());
    }
}
