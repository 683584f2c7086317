//! Which errors need a person, and which ones the provider's retries heal.
//!
//! Cluster API copies a control plane's `failureReason`/`failureMessage` into the Cluster and
//! treats them as terminal, so they (and a profile's `Failed` phase) are kept for errors that
//! need a person. The rule:
//! - An error of a class that cannot heal by retrying (access denied, invalid parameter or
//!   configuration, quota or limit exceeded, a missing or invalid template, a name already
//!   taken) is terminal at once.
//! - An error of a transient class (throttling, `ResourceInUseException`, AWS 5xx, timeouts,
//!   expired temporary credentials,
//!   connection errors, API conflicts) is not terminal: provider-terraform retries it, and the
//!   status shows it as `TransientError` with its message. Only when it persists for
//!   [`TRANSIENT_LIMIT`], measured from the `lastTransitionTime` of the apply's failing
//!   `Synced` condition, does it count as terminal.
//! - An error that matches neither list is treated as needing a person: most Terraform errors
//!   are configuration errors that no retry fixes, and the message says what it is.
//!
//! Terminal patterns are checked first, so a message naming both (say, an access error
//! reported through a retried request) is terminal.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// How long a transient error may persist before it counts as needing a person. AWS's SDKs
/// give up on throttling after a few attempts within seconds, and a Fargate profile operation
/// that blocks another takes a few minutes; half an hour of the same class of error means
/// something is wrong that retrying does not fix.
pub const TRANSIENT_LIMIT: Duration = Duration::from_secs(30 * 60);

/// Reason shown while a transient error is retried.
pub use super::reason::TRANSIENT_ERROR;

/// The class of an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Retrying does not help: a person has to change something.
    NeedsPerson,
    /// The provider's retries are expected to heal it.
    Transient,
}

/// Condition reasons (set by the apply controller) that always need a person.
const TERMINAL_REASONS: &[&str] = &[
    "TemplateNotFound",
    "InvalidTemplate",
    "WorkspaceNameConflict",
];

/// Error texts (AWS error codes, Terraform diagnostics) that need a person; matched
/// case-insensitively anywhere in the message.
const TERMINAL_PATTERNS: &[&str] = &[
    "AccessDenied",
    "UnauthorizedOperation",
    "is not authorized to perform",
    "InvalidParameter",
    "InvalidRequest",
    "ValidationError",
    "ValidationException",
    "ResourceLimitExceeded",
    "LimitExceededException",
    "QuotaExceeded",
    "AlreadyExists",
    // EKS answers a create of a profile that is still there (say, orphaned) with
    // `ResourceInUseException: Fargate Profile already exists`: no retry heals it.
    "already exists",
    "No value for required variable",
    "Invalid HCL",
    "Invalid var file",
    "Unsupported argument",
];

/// Error texts of failures that heal by retrying; matched case-insensitively.
const TRANSIENT_PATTERNS: &[&str] = &[
    "Throttling",
    "Rate exceeded",
    "TooManyRequests",
    "RequestLimitExceeded",
    "ResourceInUseException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "ServerException",
    "StatusCode: 500",
    "StatusCode: 502",
    "StatusCode: 503",
    "StatusCode: 504",
    "RequestTimeout",
    "timeout",
    "timed out",
    "deadline exceeded",
    "connection reset",
    "connection refused",
    "broken pipe",
    "unexpected EOF",
    "TLS handshake",
    "no such host",
    "the object has been modified",
    // provider-terraform stopped Terraform: its `--timeout` ended the reconcile ("context
    // deadline exceeded") or its pod was stopping ("context canceled"); the next run resumes.
    "shutdown while running terraform command",
    // Expired temporary credentials (web identity, instance or pod identity) are renewed on
    // a later run; credentials that stay expired for the limit need a person.
    "ExpiredToken",
    "security token included in the request is expired",
];

/// What a person can do about an error whose message alone does not say it; None for the
/// others. Shown after the provider's message.
pub fn hint(message: &str) -> Option<&'static str> {
    let text = message.to_ascii_lowercase();
    if !text.contains("shutdown while running terraform command") {
        return None;
    }
    Some(if text.contains("deadline exceeded") {
        "provider-terraform's --timeout (20m by default) stopped Terraform before it finished; \
         the provider runs it again, and with a remote state backend it resumes, but an apply \
         that always takes longer never finishes: raise --timeout (see the README)"
    } else {
        "provider-terraform stopped Terraform (its pod was stopping); it runs it again"
    })
}

/// The class of an error from its condition reason and message (see the module's rule).
pub fn classify(reason: &str, message: &str) -> Class {
    let text = message.to_ascii_lowercase();
    let has = |patterns: &[&str]| {
        patterns
            .iter()
            .any(|p| text.contains(&p.to_ascii_lowercase()))
    };
    if TERMINAL_REASONS.contains(&reason) || has(TERMINAL_PATTERNS) {
        Class::NeedsPerson
    } else if has(TRANSIENT_PATTERNS) {
        Class::Transient
    } else {
        Class::NeedsPerson
    }
}

/// What an error means now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Report it as a failure that needs a person.
    Terminal,
    /// Show it and let the provider retry; it becomes terminal at `until` if it lasts.
    Retrying {
        /// When it becomes terminal.
        until: Timestamp,
    },
}

/// What an error (`reason`, `message`) that has been failing `since` (its condition's
/// lastTransitionTime; None when unknown, taken as now) means at `now`.
pub fn verdict(reason: &str, message: &str, since: Option<Timestamp>, now: Timestamp) -> Verdict {
    if classify(reason, message) == Class::NeedsPerson {
        return Verdict::Terminal;
    }
    let since = since.unwrap_or(now);
    let until = since.checked_add(TRANSIENT_LIMIT).unwrap_or(Timestamp::MAX);
    if now >= until {
        Verdict::Terminal
    } else {
        Verdict::Retrying { until }
    }
}

#[cfg(test)]
#[path = "failure_tests.rs"]
mod tests;
