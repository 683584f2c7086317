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
