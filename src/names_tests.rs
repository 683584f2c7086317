use super::*;

/// A DNS label (RFC 1123), which is also a valid label value: lower-case letters, digits
/// and '-', starting and ending with a letter or digit, at most 63 characters.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LABEL
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[test]
fn valid_names_pass_through_unchanged() {
    assert_eq!(
        object_name("demo-fargate-monitoring"),
        "demo-fargate-monitoring"
    );
    assert_eq!(label_value("monitoring"), "monitoring");
    assert_eq!(eks_apply_name("demo"), "demo-eks-controlplane-apply");
    assert_eq!(eks_connection_secret("demo"), "demo-eks-connection");
    assert_eq!(vpc_connection_secret("demo"), "demo-vpc-connection");
}

#[test]
fn derived_names_are_stable() {
    // Fixed values: a change here renames the children of every existing control plane.
    assert_eq!(
        profile_apply_name("demo", "monitoring"),
        "demo-fargate-monitoring-ee19a826"
    );
    assert_eq!(
        workspace_name("team-a", "demo-eks-controlplane-apply"),
        "demo-eks-controlplane-4813f6a7"
    );
    assert_eq!(
        profile_apply_name("demo", "batch_jobs"),
        profile_apply_name("demo", "batch_jobs")
    );
}

#[test]
fn profile_names_that_are_not_dns_names_get_distinct_names() {
    let underscore = profile_apply_name("demo", "batch_jobs");
    let dash = profile_apply_name("demo", "batch-jobs");
    let upper = profile_apply_name("demo", "Batch-Jobs");
    assert!(
        underscore.starts_with("demo-fargate-batch-jobs-"),
        "{underscore}"
    );
    assert!(dash.starts_with("demo-fargate-batch-jobs-"), "{dash}");
    assert_ne!(underscore, dash);
    assert_ne!(upper, dash);
    assert_ne!(upper, underscore);
    for name in [underscore, dash, upper] {
        assert!(is_dns_label(&name), "{name}");
    }
}

#[test]
fn pairs_that_concatenate_alike_get_different_apply_names() {
    // Both read "shop-fargate-fargate-api" when concatenated.
    let a = profile_apply_name("shop", "fargate-api");
    let b = profile_apply_name("shop-fargate", "api");
    assert_ne!(a, b);
    assert!(a.starts_with("shop-fargate-fargate-api-"), "{a}");
    assert!(b.starts_with("shop-fargate-fargate-api-"), "{b}");
    assert_ne!(workspace_name("ns", &a), workspace_name("ns", &b));
    assert_ne!(profile_connection_secret(&a), profile_connection_secret(&b));
}

#[test]
fn the_longest_names_admission_accepts_give_names_within_63_characters() {
    // Admission: control plane names of at most 100 characters without '.', profile names
    // of at most 100 letters, digits, '-' and '_'; namespaces are DNS labels (63).
    let cp = format!("c{}", "-x".repeat(49) + "9");
    assert_eq!(cp.len(), 100);
    let ns = "n".repeat(63);
    for profile in [
        "p".repeat(100),
        format!("P{}", "_Q".repeat(49) + "z"),
        "a".into(),
    ] {
        let apply = profile_apply_name(&cp, &profile);
        assert!(apply.len() <= MAX_PROFILE_APPLY, "{} {apply}", apply.len());
        assert!(is_dns_label(&apply), "{apply}");
        let secret = profile_connection_secret(&apply);
        assert!(is_dns_label(&secret), "{} {secret}", secret.len());
        let workspace = workspace_name(&ns, &apply);
        assert!(is_dns_label(&workspace), "{} {workspace}", workspace.len());
        assert_eq!(
            label_value(&apply),
            apply,
            "the apply name is its own label value"
        );
    }
    let eks = eks_apply_name(&cp);
    assert!(object_name(&eks) == eks && eks.len() <= MAX_NAME, "{eks}");
    let workspace = workspace_name(&ns, &eks);
    assert!(is_dns_label(&workspace), "{} {workspace}", workspace.len());
    assert!(label_value(&eks).len() <= MAX_LABEL);
    // The case of the issue: a long control plane and profile name gave 66-69 characters.
    let workspace = workspace_name(
        "default",
        &profile_apply_name("production-analytics-cluster", "batch-processing-jobs"),
    );
    assert!(workspace.len() <= MAX_LABEL, "{workspace}");
}

#[test]
fn no_two_of_many_pairs_share_an_apply_or_workspace_name() {
    // Pairs built from few parts, so that many of them concatenate alike.
    let parts = [
        "a",
        "b",
        "a-b",
        "b-a",
        "fargate",
        "a-fargate",
        "fargate-b",
        "A",
        "a_b",
    ];
    let mut applies = std::collections::BTreeMap::new();
    let mut workspaces = std::collections::BTreeSet::new();
    for cp in parts
        .iter()
        .filter(|p| p.chars().all(|c| !c.is_ascii_uppercase() && c != '_'))
    {
        for profile in parts {
            let apply = profile_apply_name(cp, profile);
            assert!(is_dns_label(&apply), "{apply}");
            if let Some(other) = applies.insert(apply.clone(), (*cp, profile)) {
                panic!("{apply} derived for {other:?} and {:?}", (cp, profile));
            }
            assert!(workspaces.insert(workspace_name("ns", &apply)));
        }
    }
    assert!(applies.len() > 50);
}

#[test]
fn an_existing_apply_keeps_its_name() {
    let derived = profile_apply_name("shop", "api");
    // Created under the earlier rule: kept.
    let owned = [("api", "shop-fargate-api"), ("web", "shop-fargate-web")];
    assert_eq!(
        profile_apply_name_in_use("api", derived.clone(), owned),
        "shop-fargate-api"
    );
    // None for this profile yet: the derived name.
    assert_eq!(
        profile_apply_name_in_use("db", derived.clone(), owned),
        derived
    );
    // The derived one among several wins; otherwise the first by name.
    let both = [("api", "z-old"), ("api", derived.as_str())];
    assert_eq!(
        profile_apply_name_in_use("api", derived.clone(), both),
        derived
    );
    let two_old = [("api", "z-old"), ("api", "b-old")];
    assert_eq!(profile_apply_name_in_use("api", derived, two_old), "b-old");
}

#[test]
fn workspace_names_differ_across_namespaces() {
    let a = workspace_name("team-a", "demo-eks-controlplane-apply");
    let b = workspace_name("team-b", "demo-eks-controlplane-apply");
    assert!(a.starts_with("demo-eks-controlplane-"), "{a}");
    assert_ne!(a, b);
    assert!(workspace_name("ns", &"x".repeat(253)).len() <= MAX_LABEL);
}

#[test]
fn label_values_are_trimmed_to_alphanumeric_ends() {
    let v = label_value("_x_");
    assert!(v.starts_with('x'), "{v}");
    assert!(v.chars().last().unwrap().is_ascii_alphanumeric());
    let profile = "p".repeat(100);
    let label = label_value(&profile);
    assert!(label.len() <= 63);
    assert_ne!(label, label_value(&"p".repeat(99)));
}
