//! What the guard writes to a Secret (pure): protect it while it is read, release it after.

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use crate::names::SECRET_FINALIZER;

/// What the guard writes to a Secret.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Add the finalizer: a reader exists.
    Protect,
    /// Remove the finalizer: no reader is left.
    Release,
}

/// The change `secret` needs when `readers` objects read it, or None. A Secret being deleted
/// cannot take a new finalizer (the API server refuses it), so one deleted before the guard
/// saw its first reader is left as it is.
pub fn decide(secret: &Secret, readers: usize) -> Option<Change> {
    let guarded = secret.finalizers().iter().any(|f| f == SECRET_FINALIZER);
    let deleting = secret.metadata.deletion_timestamp.is_some();
    match (readers > 0, guarded) {
        (true, false) if !deleting => Some(Change::Protect),
        (false, true) => Some(Change::Release),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn secret(finalizer: bool, deleting: bool) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("vpc".into()),
                finalizers: finalizer.then(|| vec![SECRET_FINALIZER.to_string()]),
                deletion_timestamp: deleting.then(|| {
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        k8s_openapi::jiff::Timestamp::now(),
                    )
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_read_secret_is_kept_until_its_last_reader_is_gone() {
        assert_eq!(decide(&secret(false, false), 1), Some(Change::Protect));
        assert_eq!(decide(&secret(true, false), 2), None);
        // Deleted while read: it stays (Terminating) until the readers are gone.
        assert_eq!(decide(&secret(true, true), 1), None);
        assert_eq!(decide(&secret(true, true), 0), Some(Change::Release));
        assert_eq!(decide(&secret(true, false), 0), Some(Change::Release));
        assert_eq!(decide(&secret(false, false), 0), None);
        // Too late: a Secret being deleted takes no new finalizer.
        assert_eq!(decide(&secret(false, true), 1), None);
    }
}
