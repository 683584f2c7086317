//! Cluster API's pause, as a CAPTCluster sees it: its own `cluster.x-k8s.io/paused` annotation
//! or its Cluster's `spec.paused` (`clusterctl move` sets both). While paused the controller
//! writes nothing but its status (`Paused=True`). Pure, so that the rule is tested here.

use std::collections::BTreeMap;

/// Cluster API's pause annotation, on any object of a cluster.
pub const PAUSED_ANNOTATION: &str = "cluster.x-k8s.io/paused";

/// Why the object is paused (the message of its `Paused` condition), or None.
/// `annotations` are the object's; `cluster_paused` is its Cluster's `spec.paused`, if the
/// Cluster is known.
pub fn paused(
    annotations: Option<&BTreeMap<String, String>>,
    cluster: &str,
    cluster_paused: Option<bool>,
) -> Option<String> {
    if cluster_paused == Some(true) {
        return Some(format!("Cluster {cluster} is paused (spec.paused)"));
    }
    annotations
        .is_some_and(|a| a.contains_key(PAUSED_ANNOTATION))
        .then(|| format!("the object has the annotation {PAUSED_ANNOTATION}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_or_the_annotation_pauses() {
        assert_eq!(paused(None, "demo", None), None);
        assert_eq!(paused(None, "demo", Some(false)), None);
        assert_eq!(
            paused(None, "demo", Some(true)).as_deref(),
            Some("Cluster demo is paused (spec.paused)")
        );
        // The annotation pauses whatever its value, as in Cluster API.
        let annotated = BTreeMap::from([(PAUSED_ANNOTATION.to_string(), String::new())]);
        assert!(paused(Some(&annotated), "demo", Some(false)).is_some());
        let other = BTreeMap::from([("x".to_string(), "y".to_string())]);
        assert_eq!(paused(Some(&other), "demo", None), None);
    }
}
