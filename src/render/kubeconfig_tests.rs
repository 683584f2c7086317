use super::*;

/// A CA value shaped as EKS reports it: base64 of a PEM certificate.
pub(crate) fn ca_value() -> String {
    let pem =
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUY2FwdA==\n-----END CERTIFICATE-----\n";
    base64::engine::general_purpose::STANDARD.encode(pem)
}

fn endpoint(host: &str, port: u16) -> Endpoint {
    Endpoint {
        host: host.into(),
        port,
    }
}

#[test]
fn endpoints_as_eks_and_the_test_server_report_them() {
    let eks = "https://0123456789ABCDEF.gr7.ap-northeast-1.eks.amazonaws.com";
    assert_eq!(
        parse_endpoint(eks),
        Ok(endpoint(
            "0123456789abcdef.gr7.ap-northeast-1.eks.amazonaws.com",
            443
        ))
    );
    assert_eq!(
        parse_endpoint("https://127.0.0.1:6443/"),
        Ok(endpoint("127.0.0.1", 6443))
    );
    assert_eq!(
        parse_endpoint(" https://[::1]:8443 "),
        Ok(endpoint("::1", 8443))
    );
    assert_eq!(endpoint("::1", 8443).url(), "https://[::1]:8443");
    assert_eq!(endpoint("a.example", 443).url(), "https://a.example");
    assert_eq!(
        endpoint("a.example", 443).api_endpoint(),
        ApiEndpoint {
            host: "a.example".into(),
            port: 443
        }
    );
}

#[test]
fn malformed_endpoints_name_the_key_and_the_shape() {
    for (raw, problem) in [
        ("", "missing"),
        ("   ", "missing"),
        ("http://a.example", "scheme is not https"),
        ("a.example:443", "no https:// scheme"),
        ("https://a.example/path", "path"),
        ("https://a.example?x=1", "path, query"),
        ("https://user@a.example", "user information"),
        ("https://a.example:0", "port"),
        ("https://a.example:99999", "port"),
        ("https://a.example:https", "port"),
        ("https://", "host is empty"),
        ("https://:443", "host is empty"),
        ("https://a_b.example", "neither a DNS name"),
        ("https://-a.example", "neither a DNS name"),
        ("https://[::1", "closing ]"),
        ("https://[zz]:1", "not an IPv6"),
    ] {
        let error = parse_endpoint(raw).expect_err(raw).to_string();
        assert!(error.contains(KEY_ENDPOINT), "{raw}: {error}");
        assert!(error.contains("expected an https URL"), "{raw}: {error}");
        assert!(error.contains(problem), "{raw}: {error}");
    }
}

#[test]
fn a_ca_is_base64_of_pem_certificates() {
    let value = ca_value();
    assert_eq!(parse_ca(&value), Ok(value.clone()));
    // Line-wrapped base64 is accepted and compacted.
    let wrapped = format!("{}\n{}", &value[..20], &value[20..]);
    assert_eq!(parse_ca(&wrapped), Ok(value));
}

#[test]
fn malformed_cas_name_the_key_and_the_shape() {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for (raw, problem) in [
        (String::new(), "missing"),
        ("not base64!".to_string(), "not base64"),
        (
            b64("-----BEGIN CERTIFICATE-----\nMIIB\n"),
            "has no END line",
        ),
        (b64("hello"), "without a CERTIFICATE block"),
        (
            b64("-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n"),
            "body is not base64",
        ),
        // The PEM itself instead of its base64.
        (
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----".to_string(),
            "not base64",
        ),
    ] {
        let error = parse_ca(&raw).expect_err(&raw).to_string();
        assert!(error.contains(KEY_CA), "{raw}: {error}");
        assert!(error.contains("expected base64 of a PEM"), "{raw}: {error}");
        assert!(error.contains(problem), "{raw}: {error}");
    }
}

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect()
}

#[test]
fn the_connection_takes_the_eks_name_from_the_secret_else_the_fallback() {
    let ca = ca_value();
    let full = data(&[
        (KEY_ENDPOINT, "https://a.example"),
        (KEY_CA, &ca),
        (KEY_CLUSTER_NAME, "eks-a"),
    ]);
    let conn = connection(&full, "cp").unwrap();
    assert_eq!(conn.eks_cluster, "eks-a");
    assert_eq!(conn.endpoint, endpoint("a.example", 443));
    let without_name = data(&[(KEY_ENDPOINT, "https://a.example"), (KEY_CA, &ca)]);
    assert_eq!(connection(&without_name, "cp").unwrap().eks_cluster, "cp");
    let without_ca = data(&[(KEY_ENDPOINT, "https://a.example")]);
    assert!(matches!(
        connection(&without_ca, "cp"),
        Err(ConnectionError::Missing { key: KEY_CA, .. })
    ));
}

fn conn() -> Connection {
    Connection {
        endpoint: endpoint("127.0.0.1", 6443),
        ca_data: ca_value(),
        eks_cluster: "eks-a".into(),
    }
}

#[test]
fn the_token_kubeconfig_parses_and_has_no_exec_plugin() {
    let yaml = render("demo", &conn(), &Credential::Token("k8s-aws-v1.abc"));
    let config: kube::config::Kubeconfig = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(config.current_context.as_deref(), Some("demo-admin@demo"));
    let cluster = config.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(config.clusters[0].name, "demo");
    assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
    assert_eq!(
        cluster.certificate_authority_data.as_deref(),
        Some(ca_value().as_str())
    );
    let user = config.auth_infos[0].auth_info.as_ref().unwrap();
    assert_eq!(config.auth_infos[0].name, "demo-admin");
    assert!(user.token.is_some());
    assert!(user.exec.is_none());
    let raw: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(
        raw["users"][0]["user"],
        json!({ "token": "k8s-aws-v1.abc" })
    );
    let context = config.contexts[0].context.as_ref().unwrap();
    assert_eq!(
        (context.cluster.as_str(), context.user.as_deref()),
        ("demo", Some("demo-admin"))
    );
}

#[test]
fn the_user_kubeconfig_runs_aws_eks_get_token() {
    let yaml = render(
        "demo",
        &conn(),
        &Credential::AwsCli {
            region: "us-east-1",
        },
    );
    let config: kube::config::Kubeconfig = serde_saphyr::from_str(&yaml).unwrap();
    let user = config.auth_infos[0].auth_info.as_ref().unwrap();
    assert!(user.token.is_none());
    let exec = user.exec.as_ref().expect("an exec entry");
    assert_eq!(exec.command.as_deref(), Some("aws"));
    assert_eq!(
        exec.args.as_deref().unwrap(),
        [
            "eks",
            "get-token",
            "--cluster-name",
            "eks-a",
            "--region",
            "us-east-1",
            "--output",
            "json"
        ]
    );
    assert_eq!(
        exec.api_version.as_deref(),
        Some("client.authentication.k8s.io/v1beta1")
    );
    assert_eq!(config.current_context.as_deref(), Some("demo-user@demo"));
}

#[test]
fn the_secret_has_the_contract_shape() {
    let owner = k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "controlplane.cluster.x-k8s.io/v1beta1".into(),
        kind: "CAPTControlPlane".into(),
        name: "demo".into(),
        uid: "u".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let s = secret(
        &secret_name("demo"),
        "ns",
        "demo",
        Some(owner.clone()),
        "kubeconfig".into(),
        "src",
        Some("2026-11-30T00:00:00Z"),
    );
    assert_eq!(s.metadata.name.as_deref(), Some("demo-kubeconfig"));
    assert_eq!(s.type_.as_deref(), Some(SECRET_TYPE));
    assert_eq!(
        s.metadata.labels.unwrap()[names::LABEL_CLUSTER_NAME],
        "demo"
    );
    assert_eq!(s.metadata.owner_references, Some(vec![owner]));
    let annotations = s.metadata.annotations.unwrap();
    assert_eq!(
        annotations[ANNOTATION_VALUE_DIGEST],
        digest(b"kubeconfig"),
        "the digest of the value, never the value"
    );
    assert_eq!(
        annotations[ANNOTATION_TOKEN_EXPIRES],
        "2026-11-30T00:00:00Z"
    );
    assert_eq!(s.data.unwrap()[KEY_VALUE].0, b"kubeconfig");
    assert_eq!(user_secret_name("demo"), "demo-user-kubeconfig");
}

#[test]
fn the_source_digest_follows_endpoint_ca_and_region() {
    let base = source_digest("demo", &conn(), "us-east-1");
    assert_eq!(base, source_digest("demo", &conn(), "us-east-1"));
    let mut moved = conn();
    moved.endpoint.port = 443;
    assert_ne!(base, source_digest("demo", &moved, "us-east-1"));
    let mut rotated = conn();
    rotated.ca_data = base64::engine::general_purpose::STANDARD
        .encode("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    assert_ne!(base, source_digest("demo", &rotated, "us-east-1"));
    assert_ne!(base, source_digest("demo", &conn(), "eu-west-1"));
}
