//! Errors of the controllers; each says what failed and, where a user can act, what to do.

/// A reconcile failed; the object is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the Kubernetes API failed.
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// An object read from the API server lacks a namespace, name or uid.
    #[error("object {0} lacks metadata the controller needs (namespace, name or uid)")]
    MissingMetadata(String),
    /// A child's name is taken by an object this operator did not create for that owner; the
    /// object is left untouched.
    #[error(
        "{kind} {name} already exists and was not created by this owner ({holder}); it is left untouched: delete or rename that object, or rename the owner or the profile so that another name is derived"
    )]
    NotOwned {
        /// Kind of the child.
        kind: String,
        /// Its name.
        name: String,
        /// Who controls the existing object, e.g. `owned by CAPTControlPlane shop` or `no owner`.
        holder: String,
    },
    /// Serialising an object, or decoding a packed cached one (`runtime::packed`), failed: a
    /// bug (the types always serialise, and a packed object was written from its type).
    #[error(
        "could not serialise or decode {0}: {1}; this is a bug of capt-fargate, please report it"
    )]
    Serialization(&'static str, #[source] serde_json::Error),
}

impl Error {
    /// Short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(status)) if status.is_conflict() => "conflict",
            Error::Kube(kube::Error::Api(status)) if status.is_forbidden() => "forbidden",
            Error::Kube(_) => "kube",
            Error::MissingMetadata(_) => "metadata",
            Error::NotOwned { .. } => "not_owned",
            Error::Serialization(..) => "serialization",
        }
    }
}

/// Result of a reconcile step.
pub type Result<T, E = Error> = std::result::Result<T, E>;
