//! Setting conditions without flapping timestamps: `lastTransitionTime` moves only when the
//! status flips, so recomputing the same state yields an identical object and no write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::conditions::XpCondition;

/// A condition as computed, before timestamps are merged in.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// Condition type.
    pub type_: &'static str,
    /// True or False.
    pub status: bool,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

impl Desired {
    /// A condition of `type_` with the given status, reason and message.
    pub fn new(type_: &'static str, status: bool, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Desired { type_, status, reason: reason.into(), message: message.into() }
    }
}

fn status_str(status: bool) -> String {
    if status { "True" } else { "False" }.to_string()
}

/// metav1 conditions for `desired`, keeping the transition time of unchanged statuses from
/// `old` and keeping conditions of other types (owned by someone else) as they are.
pub fn merge(old: &[Condition], desired: &[Desired], generation: Option<i64>, now: &Time) -> Vec<Condition> {
    let mut out: Vec<Condition> =
        old.iter().filter(|c| !desired.iter().any(|d| d.type_ == c.type_)).cloned().collect();
    for d in desired {
        let status = status_str(d.status);
        let previous = old.iter().find(|c| c.type_ == d.type_);
        let last_transition_time = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => now.clone(),
        };
        out.push(Condition {
            type_: d.type_.to_string(),
            status,
            reason: d.reason.clone(),
            message: d.message.clone(),
            last_transition_time,
            observed_generation: generation,
        });
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// The same for crossplane-style conditions.
pub fn merge_xp(old: &[XpCondition], desired: &[Desired], generation: Option<i64>, now: &Time) -> Vec<XpCondition> {
    let mut out: Vec<XpCondition> =
        old.iter().filter(|c| !desired.iter().any(|d| d.type_ == c.type_)).cloned().collect();
    for d in desired {
        let status = status_str(d.status);
        let previous = old.iter().find(|c| c.type_ == d.type_);
        let last_transition_time = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => now.clone(),
        };
        out.push(XpCondition {
            type_: d.type_.to_string(),
            status,
            reason: d.reason.clone(),
            message: (!d.message.is_empty()).then(|| d.message.clone()),
            last_transition_time,
            observed_generation: generation,
        });
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let first = merge(&[], &[Desired::new("A", false, "Creating", "m1")], Some(1), &at(10));
        let same = merge(&first, &[Desired::new("A", false, "Waiting", "m2")], Some(2), &at(20));
        assert_eq!(same[0].last_transition_time, at(10));
        assert_eq!((same[0].reason.as_str(), same[0].message.as_str()), ("Waiting", "m2"));
        assert_eq!(same[0].observed_generation, Some(2));
        let flipped = merge(&same, &[Desired::new("A", true, "Ready", "ok")], Some(2), &at(30));
        assert_eq!(flipped[0].last_transition_time, at(30));
        assert_eq!(flipped[0].status, "True");
    }

    #[test]
    fn recomputing_the_same_state_is_a_fixed_point() {
        let desired = [Desired::new("B", true, "R", "m"), Desired::new("A", false, "R", "m")];
        let once = merge(&[], &desired, Some(1), &at(1));
        assert_eq!(merge(&once, &desired, Some(1), &at(99)), once);
        let xp = merge_xp(&[], &desired, Some(1), &at(1));
        assert_eq!(merge_xp(&xp, &desired, Some(1), &at(99)), xp);
        assert_eq!(once.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(), ["A", "B"]);
    }

    #[test]
    fn conditions_of_other_types_are_kept() {
        let other = merge(&[], &[Desired::new("Other", true, "X", "x")], None, &at(1));
        let out = merge(&other, &[Desired::new("Mine", true, "Y", "y")], None, &at(2));
        assert_eq!(out.len(), 2);
    }
}
