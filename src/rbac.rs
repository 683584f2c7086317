//! The permissions the operator's code uses, as (API group, resource, verbs). The Helm chart's
//! ClusterRole must grant exactly these; a test compares them and runs the operator with the
//! chart's ServiceAccount to prove they are enough.
