//! Setting conditions without flapping timestamps: `lastTransitionTime` moves only when the
//! status flips, so recomputing the same state yields an identical object and no write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::conditions::XpCondition;

/// A condition as computed, before timestamps are merged in.
#[derive(Clone, Debug, PartialEq)]
pub struct WantedCondition {
    /// Condition type.
    pub type_: &'static str,
    /// True or False.
    pub status: bool,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

impl WantedCondition {
    /// A condition of `type_` with the given status, reason and message.
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        WantedCondition {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

fn status_str(status: bool) -> String {
    if status { "True" } else { "False" }.to_string()
}

/// What [`merge`] needs to know about a condition type.
pub trait ConditionLike: Clone {
    /// Condition type.
    fn type_(&self) -> &str;
    /// "True" or "False".
    fn status(&self) -> &str;
    /// When the status last changed.
    fn last_transition_time(&self) -> &Time;
    /// Builds one from its parts.
    fn build(
        desired: &WantedCondition,
        status: String,
        last_transition_time: Time,
        generation: Option<i64>,
    ) -> Self;
}

impl ConditionLike for Condition {
    fn type_(&self) -> &str {
        &self.type_
    }
    fn status(&self) -> &str {
        &self.status
    }
    fn last_transition_time(&self) -> &Time {
        &self.last_transition_time
    }
    fn build(
        d: &WantedCondition,
        status: String,
        last_transition_time: Time,
        generation: Option<i64>,
    ) -> Self {
        Condition {
            type_: d.type_.to_string(),
            status,
            reason: d.reason.clone(),
            message: d.message.clone(),
            last_transition_time,
            observed_generation: generation,
        }
    }
}

impl ConditionLike for XpCondition {
    fn type_(&self) -> &str {
        &self.type_
    }
    fn status(&self) -> &str {
        &self.status
    }
    fn last_transition_time(&self) -> &Time {
        &self.last_transition_time
    }
    fn build(
        d: &WantedCondition,
        status: String,
        last_transition_time: Time,
        generation: Option<i64>,
    ) -> Self {
        XpCondition {
            type_: d.type_.to_string(),
            status,
            reason: d.reason.clone(),
            // Crossplane conditions carry no empty messages.
            message: (!d.message.is_empty()).then(|| d.message.clone()),
            last_transition_time,
            observed_generation: generation,
        }
    }
}

/// Conditions for `desired`, keeping the transition time of unchanged statuses from `old` and
/// keeping conditions of other types (owned by someone else) as they are; sorted by type.
pub fn merge<C: ConditionLike>(
    old: &[C],
    desired: &[WantedCondition],
    generation: Option<i64>,
    now: &Time,
) -> Vec<C> {
    let mut out: Vec<C> = old
        .iter()
        .filter(|c| !desired.iter().any(|d| d.type_ == c.type_()))
        .cloned()
        .collect();
    for d in desired {
        let status = status_str(d.status);
        let last_transition_time = match old.iter().find(|c| c.type_() == d.type_) {
            Some(p) if p.status() == status => p.last_transition_time().clone(),
            _ => now.clone(),
        };
        out.push(C::build(d, status, last_transition_time, generation));
    }
    out.sort_by(|a, b| a.type_().cmp(b.type_()));
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
        let first: Vec<Condition> = merge(
            &[],
            &[WantedCondition::new("A", false, "Creating", "m1")],
            Some(1),
            &at(10),
        );
        let same = merge(
            &first,
            &[WantedCondition::new("A", false, "Waiting", "m2")],
            Some(2),
            &at(20),
        );
        assert_eq!(same[0].last_transition_time, at(10));
        assert_eq!(
            (same[0].reason.as_str(), same[0].message.as_str()),
            ("Waiting", "m2")
        );
        assert_eq!(same[0].observed_generation, Some(2));
        let flipped = merge(
            &same,
            &[WantedCondition::new("A", true, "Ready", "ok")],
            Some(2),
            &at(30),
        );
        assert_eq!(flipped[0].last_transition_time, at(30));
        assert_eq!(flipped[0].status, "True");
    }

    #[test]
    fn recomputing_the_same_state_is_a_fixed_point() {
        let desired = [
            WantedCondition::new("B", true, "R", "m"),
            WantedCondition::new("A", false, "R", "m"),
        ];
        let once: Vec<Condition> = merge(&[], &desired, Some(1), &at(1));
        assert_eq!(merge(&once, &desired, Some(1), &at(99)), once);
        let xp: Vec<XpCondition> = merge(&[], &desired, Some(1), &at(1));
        assert_eq!(merge(&xp, &desired, Some(1), &at(99)), xp);
        assert_eq!(xp[0].message.as_deref(), Some("m"));
        assert_eq!(
            once.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            ["A", "B"]
        );
    }

    #[test]
    fn conditions_of_other_types_are_kept() {
        let other: Vec<Condition> = merge(
            &[],
            &[WantedCondition::new("Other", true, "X", "x")],
            None,
            &at(1),
        );
        let out = merge(
            &other,
            &[WantedCondition::new("Mine", true, "Y", "y")],
            None,
            &at(2),
        );
        assert_eq!(out.len(), 2);
    }
}
