use super::*;
use crate::render::fixtures::control_plane;

const SPEC: &str = r#"
version: "1.31"
workspaceTemplateRef: { name: eks-controlplane }
additionalTags: { env: demo, team: platform }
additionalFargateProfiles:
  - name: monitoring
    workspaceTemplateRef: { name: eks-fargate-profile }
    selectors:
      - { namespace: monitoring }
      - { namespace: "obs-*", labels: { app: prometheus } }
    tags: { team: observability }
  - name: batch_jobs
    workspaceTemplateRef: { name: eks-fargate-profile, namespace: shared }
    subnetIDs: [subnet-0aa, subnet-0bb]
    selectors: [{ namespace: batch }]
"#;

fn profiles() -> (CAPTControlPlane, Vec<FargateProfile>) {
    let cp = control_plane(SPEC);
    let profiles = cp.spec.additional_fargate_profiles.clone().unwrap();
    (cp, profiles)
}

#[test]
fn typed_variables_and_merged_tags() {
    let (cp, p) = profiles();
    let wta = render(&cp, &p[0]);
    assert_eq!(
        wta.metadata.name,
        Some(names::profile_apply_name("demo", "monitoring"))
    );
    assert!(
        wta.metadata
            .name
            .as_deref()
            .unwrap()
            .starts_with("demo-fargate-monitoring-"),
        "{:?}",
        wta.metadata.name
    );
    let tv = wta.spec.terraform_values();
    assert_eq!(tv["cluster_name"], json!("demo"));
    assert_eq!(tv["profile_name"], json!("monitoring"));
    assert_eq!(
        tv["selectors"],
        json!([
            { "namespace": "monitoring", "labels": {} },
            { "namespace": "obs-*", "labels": { "app": "prometheus" } },
        ])
    );
    assert_eq!(
        tv["tags"],
        json!({ "env": "demo", "team": "observability" })
    );
    assert!(
        !tv.contains_key("subnet_ids"),
        "no subnets given: the module uses the VPC's private subnets"
    );
    let labels = wta.metadata.labels.unwrap();
    assert_eq!(labels[names::LABEL_PROFILE], "monitoring");
    assert_eq!(labels[names::LABEL_CLUSTER_NAME], "demo");
}

#[test]
fn waits_for_both_connection_secrets_with_their_keys_and_the_eks_workspace() {
    let (cp, p) = profiles();
    let spec = render(&cp, &p[0]).spec;
    let secrets = spec.wait_for_secrets.unwrap();
    assert_eq!(secrets[0].name, "demo-eks-connection");
    assert_eq!(
        secrets[0].keys.as_deref().unwrap(),
        ["cluster_name", "cluster_endpoint"]
    );
    assert_eq!(secrets[1].name, "demo-vpc-connection");
    assert_eq!(secrets[1].keys.as_deref().unwrap(), ["vpc_config"]);
    let ws = spec.wait_for_workspaces.unwrap();
    assert_eq!(
        ws[0].name,
        names::workspace_name("team-a", "demo-eks-controlplane-apply")
    );
    assert_eq!(
        spec.write_connection_secret_to_ref.unwrap().name,
        format!(
            "{}-connection",
            names::profile_apply_name("demo", "monitoring")
        )
    );
}

#[test]
fn explicit_subnets_template_namespace_and_non_dns_profile_names() {
    let (cp, p) = profiles();
    let wta = render(&cp, &p[1]);
    let name = wta.metadata.name.unwrap();
    assert!(name.starts_with("demo-fargate-batch-jobs-"), "{name}");
    assert_eq!(
        wta.metadata.annotations.unwrap()[names::ANNOTATION_PROFILE_NAME],
        "batch_jobs"
    );
    assert_eq!(wta.spec.template_ref.namespace.as_deref(), Some("shared"));
    assert_eq!(
        wta.spec.terraform_values()["subnet_ids"],
        json!(["subnet-0aa", "subnet-0bb"])
    );
}

#[test]
fn an_existing_apply_name_and_eks_workspace_are_kept() {
    let (cp, p) = profiles();
    let wta = render_as(&cp, &p[0], "demo-fargate-monitoring", "demo-eks-old-ws");
    assert_eq!(
        wta.metadata.name.as_deref(),
        Some("demo-fargate-monitoring")
    );
    assert_eq!(
        wta.spec.write_connection_secret_to_ref.unwrap().name,
        "demo-fargate-monitoring-connection",
        "the secret of an existing apply keeps its name"
    );
    assert_eq!(
        wta.spec.wait_for_workspaces.unwrap()[0].name,
        "demo-eks-old-ws"
    );
}

#[test]
fn tags_do_not_change_the_immutable_hash_but_selectors_do() {
    let (cp, p) = profiles();
    let base = immutable_hash(&cp, &p[0]);
    let mut retagged = p[0].clone();
    retagged.tags = Some(BTreeMap::from([("x".into(), "y".into())]));
    assert_eq!(immutable_hash(&cp, &retagged), base);
    let mut reselected = p[0].clone();
    reselected.selectors[0].namespace = "metrics".into();
    assert_ne!(immutable_hash(&cp, &reselected), base);
    let mut moved = p[0].clone();
    moved.subnet_ids = Some(vec!["subnet-0cc".into()]);
    assert_ne!(immutable_hash(&cp, &moved), base);
}

#[test]
fn selectors_and_subnets_are_sets_so_their_order_changes_nothing() {
    let (cp, p) = profiles();
    // Both profiles reordered: selectors swapped, subnets swapped, one of each repeated.
    let mut swapped = p[0].clone();
    swapped.selectors.reverse();
    swapped.selectors.push(swapped.selectors[0].clone());
    let mut reversed = p[1].clone();
    reversed.subnet_ids = Some(vec![
        "subnet-0bb".into(),
        "subnet-0aa".into(),
        "subnet-0bb".into(),
    ]);
    for (original, reordered) in [(&p[0], &swapped), (&p[1], &reversed)] {
        assert_eq!(
            immutable_hash(&cp, reordered),
            immutable_hash(&cp, original)
        );
        let rendered = |p| serde_json::to_value(render(&cp, p)).unwrap();
        assert_eq!(rendered(reordered), rendered(original));
    }
    // The canonical order: by namespace, then labels; subnets sorted.
    let selectors = &render(&cp, &swapped).spec.terraform_values()["selectors"];
    assert_eq!(
        selectors,
        &json!([
            { "namespace": "monitoring", "labels": {} },
            { "namespace": "obs-*", "labels": { "app": "prometheus" } },
        ])
    );
    let mut by_labels = p[0].clone();
    by_labels.selectors[0].namespace = "obs-*".into();
    by_labels.selectors[0].labels = Some(BTreeMap::from([("app".into(), "grafana".into())]));
    by_labels.selectors.reverse();
    assert_eq!(
        render(&cp, &by_labels).spec.terraform_values()["selectors"],
        json!([
            { "namespace": "obs-*", "labels": { "app": "grafana" } },
            { "namespace": "obs-*", "labels": { "app": "prometheus" } },
        ])
    );
    // A real change still replaces: another selector, or another subnet set.
    let mut other = p[0].clone();
    other.selectors[1].labels = None;
    assert_ne!(immutable_hash(&cp, &other), immutable_hash(&cp, &p[0]));
    let mut fewer = p[1].clone();
    fewer.subnet_ids = Some(vec!["subnet-0aa".into()]);
    assert_ne!(immutable_hash(&cp, &fewer), immutable_hash(&cp, &p[1]));
}

#[test]
fn every_apply_of_a_control_plane_is_born_blocking_a_move() {
    let (cp, p) = profiles();
    let eks = crate::render::eks::render(&cp);
    for apply in [render(&cp, &p[0]), render(&cp, &p[1]), eks] {
        assert_eq!(
            apply.annotations().get(names::BLOCK_MOVE_ANNOTATION),
            Some(&String::new()),
            "{}",
            apply.name_any()
        );
    }
}
