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
mod tests {
    use super::*;

    fn assert_classes(table: &[(&str, &str, Class)]) {
        for (reason, message, class) in table {
            assert_eq!(classify(reason, message), *class, "{reason}: {message}");
        }
    }

    #[test]
    fn transient_errors_are_those_the_providers_retries_heal() {
        use Class::*;
        assert_classes(&[
            (
                "ReconcileError",
                "create failed: ... Summary: ThrottlingException: Rate exceeded.",
                Transient,
            ),
            (
                "ReconcileError",
                "ResourceInUseException: Cannot create Fargate Profile x because cluster c currently has Fargate profile y in status CREATING",
                Transient,
            ),
            (
                "ReconcileError",
                "api error TooManyRequestsException: Too Many Requests",
                Transient,
            ),
            (
                "ReconcileError",
                "operation error EKS: CreateFargateProfile, https response error StatusCode: 503, ServiceUnavailable",
                Transient,
            ),
            (
                "ReconcileError",
                "InternalFailure: An internal error occurred",
                Transient,
            ),
            (
                "ReconcileError",
                "RequestLimitExceeded: Request limit exceeded.",
                Transient,
            ),
            (
                "ReconcileError",
                "dial tcp 10.0.0.1:443: i/o timeout",
                Transient,
            ),
            (
                "ReconcileError",
                "read tcp: connection reset by peer",
                Transient,
            ),
            ("ReconcileError", "context deadline exceeded", Transient),
            (
                "ReconcileError",
                "Operation cannot be fulfilled on workspaces: the object has been modified",
                Transient,
            ),
            (
                "ReconcileError",
                "cannot observe external resource: cannot diff Terraform plan: Terraform encountered an error. Summary: ExpiredToken: The security token included in the request is expired",
                Transient,
            ),
        ]);
    }

    #[test]
    fn other_errors_need_a_person() {
        use Class::*;
        assert_classes(&[
            (
                "ReconcileError",
                "AccessDeniedException: User arn:aws:iam::1:user/x is not authorized to perform: eks:DeleteFargateProfile",
                NeedsPerson,
            ),
            (
                "ReconcileError",
                "InvalidParameterException: Subnet subnet-1 is not private",
                NeedsPerson,
            ),
            (
                "ReconcileError",
                "ResourceLimitExceededException: Fargate profile limit reached",
                NeedsPerson,
            ),
            (
                "ReconcileError",
                "ServiceQuotaExceededException",
                NeedsPerson,
            ),
            (
                "ReconcileError",
                "EntityAlreadyExists: Role with name x already exists",
                NeedsPerson,
            ),
            (
                "ReconcileError",
                "No value for required variable: The root module input variable \"x\" is not set",
                NeedsPerson,
            ),
            (
                "TemplateNotFound",
                "WorkspaceTemplate ns/t not found",
                NeedsPerson,
            ),
            ("InvalidTemplate", "variable x is not set", NeedsPerson),
            (
                "WorkspaceNameConflict",
                "Workspace w exists and was not created for this apply",
                NeedsPerson,
            ),
            (
                "ReconcileError",
                "create failed: ... Summary: creating EKS Fargate Profile (demo:monitoring): ResourceInUseException: Fargate Profile already exists",
                NeedsPerson,
            ),
            // A terminal class wins over a transient word in the same message.
            (
                "ReconcileError",
                "AccessDenied after retry: Rate exceeded",
                NeedsPerson,
            ),
            // Unknown: a person looks.
            (
                "ReconcileError",
                "Error: something nobody has seen before",
                NeedsPerson,
            ),
        ]);
    }

    #[test]
    fn a_killed_terraform_run_is_transient_and_says_what_to_do() {
        let timeout = "create failed: cannot apply Terraform configuration: shutdown while running terraform command: context deadline exceeded";
        assert_eq!(classify("ReconcileError", timeout), Class::Transient);
        assert!(hint(timeout).is_some_and(|h| h.contains("raise --timeout")));
        let stopped = "delete failed: cannot destroy Terraform configuration: shutdown while running terraform command: context canceled";
        assert_eq!(classify("ReconcileError", stopped), Class::Transient);
        assert!(hint(stopped).is_some_and(|h| h.contains("pod was stopping")));
        assert_eq!(hint("ThrottlingException: Rate exceeded"), None);
    }

    #[test]
    fn a_transient_error_turns_terminal_only_when_it_lasts() {
        let since = Timestamp::from_second(1_000_000).unwrap();
        let limit = since.checked_add(TRANSIENT_LIMIT).unwrap();
        let throttled = "ThrottlingException: Rate exceeded";
        assert_eq!(
            verdict("ReconcileError", throttled, Some(since), since),
            Verdict::Retrying { until: limit }
        );
        let almost = limit.checked_sub(Duration::from_secs(1)).unwrap();
        assert_eq!(
            verdict("ReconcileError", throttled, Some(since), almost),
            Verdict::Retrying { until: limit }
        );
        assert_eq!(
            verdict("ReconcileError", throttled, Some(since), limit),
            Verdict::Terminal
        );
        assert_eq!(
            verdict(
                "ReconcileError",
                "AccessDeniedException",
                Some(since),
                since
            ),
            Verdict::Terminal,
            "a class that cannot heal is terminal at once"
        );
        assert_eq!(
            verdict("ReconcileError", throttled, None, since),
            Verdict::Retrying { until: limit },
            "no transition time: counted from now"
        );
    }
}
