//! Tests of `shared.rs`: what the Secret cache keeps, and the fan-out of watch events.

use super::*;
use kube::api::ObjectMeta;

#[test]
fn secrets_keep_key_names_but_no_values() {
    use sha2::Digest;
    let secret = |name: &str| Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("app".to_string(), "x".to_string())].into()),
            annotations: Some(
                [(
                    "kubectl.kubernetes.io/last-applied-configuration".to_string(),
                    r#"{"data":{"kubeconfig":"c2VjcmV0"}}"#.to_string(),
                )]
                .into(),
            ),
            owner_references: Some(vec![Default::default()]),
            ..Default::default()
        },
        data: Some(
            [("kubeconfig".to_string(), ByteString(b"secret".to_vec()))]
                .into_iter()
                .collect(),
        ),
        string_data: Some(
            [("token".to_string(), "t".to_string())]
                .into_iter()
                .collect(),
        ),
        ..Default::default()
    };
    // A connection secret: key names only, none of its metadata but what the guard reads.
    let mut connection = secret("demo-fargate-a-connection");
    connection.metadata.finalizers = Some(vec!["f".into()]);
    key_names_only(&mut connection);
    let data = connection.data.expect("data kept");
    assert_eq!(data.keys().collect::<Vec<_>>(), ["kubeconfig"]);
    assert!(data["kubeconfig"].0.is_empty(), "no value, no digest");
    assert_eq!(connection.string_data, None);
    let meta = &connection.metadata;
    assert_eq!(meta.annotations, None, "may repeat the values");
    assert_eq!((&meta.labels, &meta.owner_references), (&None, &None));
    assert_eq!(meta.name.as_deref(), Some("demo-fargate-a-connection"));
    assert_eq!(meta.finalizers.as_deref(), Some(&["f".to_string()][..]));
    // A kubeconfig Secret: each value as its digest, compared with the annotation.
    let mut kubeconfig = secret("demo-kubeconfig");
    key_names_only(&mut kubeconfig);
    assert_eq!(
        kubeconfig.data.unwrap()["kubeconfig"].0,
        sha2::Sha256::digest(b"secret").to_vec(),
        "a digest, never the value"
    );
    assert_eq!(kubeconfig.string_data, None);
    assert_eq!(kubeconfig.metadata.annotations, None, "not ours");
    assert!(kubeconfig.metadata.owner_references.is_some());
}

#[test]
fn the_operators_own_annotations_stay_for_comparison() {
    let own = crate::render::kubeconfig::ANNOTATION_VALUE_DIGEST;
    let mut secret = Secret {
        metadata: ObjectMeta {
            name: Some("demo-kubeconfig".into()),
            labels: Some(
                [(
                    "cluster.x-k8s.io/cluster-name".to_string(),
                    "demo".to_string(),
                )]
                .into(),
            ),
            annotations: Some(
                [
                    (own.to_string(), "abc".to_string()),
                    ("other.example/x".to_string(), "y".to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    key_names_only(&mut secret);
    let annotations = secret.metadata.annotations.expect("ours kept");
    assert_eq!(annotations.keys().collect::<Vec<_>>(), [own]);
    assert_eq!(
        secret.metadata.labels.expect("labels kept")["cluster.x-k8s.io/cluster-name"],
        "demo"
    );
}

#[test]
fn connection_secrets_keep_their_public_values_only() {
    let pairs = [
        ("cluster_endpoint", "https://a.example"),
        ("cluster_certificate_authority_data", "Q0E="),
        ("cluster_name", "demo"),
        ("oidc_provider_arn", "arn"),
        ("vpc_id", "vpc-1"),
        ("availability_zones", r#"["a"]"#),
        ("vpc_config", "{}"),
    ];
    let secret = |name: &str| Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    };
    let kept = |name: &str| -> Vec<String> {
        let mut s = secret(name);
        key_names_only(&mut s);
        let data = s.data.unwrap();
        assert_eq!(data.len(), pairs.len(), "every key name stays");
        pairs
            .iter()
            .filter(|(k, v)| {
                let value = &data[*k].0;
                assert!(value.is_empty() || value == v.as_bytes(), "{k}");
                !value.is_empty()
            })
            .map(|(k, _)| k.to_string())
            .collect()
    };
    assert_eq!(
        kept("demo-eks-connection"),
        [
            "cluster_endpoint",
            "cluster_certificate_authority_data",
            "cluster_name"
        ]
    );
    assert_eq!(
        kept("demo-vpc-connection"),
        ["vpc_id", "availability_zones"]
    );
    assert!(kept("demo-fargate-a-connection").is_empty());
}

#[tokio::test]
async fn both_consumers_get_every_event_and_errors_are_not_forwarded() {
    let source = futures::stream::iter(vec![
        Ok(watcher::Event::Init),
        Err(watcher::Error::NoResourceVersion),
        Ok(watcher::Event::Apply(1u32)),
        Ok(watcher::Event::InitDone),
    ]);
    let [a, b] = fan_out(source, futures::future::pending(), "test");
    let kinds = |events: Vec<Result<watcher::Event<u32>, watcher::Error>>| {
        events
            .into_iter()
            .map(|e| match e.expect("no errors forwarded") {
                watcher::Event::Init => "init".to_string(),
                watcher::Event::Apply(n) => format!("apply {n}"),
                watcher::Event::InitDone => "done".to_string(),
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>()
    };
    let (a, b) = futures::join!(a.collect::<Vec<_>>(), b.collect::<Vec<_>>());
    assert_eq!(kinds(a), ["init", "apply 1", "done"]);
    assert_eq!(kinds(b), ["init", "apply 1", "done"]);
}

/// Counts its clones: what the fan-out copies of an object.
struct Counted(&'static std::sync::atomic::AtomicUsize);

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Counted(self.0)
    }
}

#[tokio::test]
async fn consumers_share_one_copy_of_each_event() {
    static CLONES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let source =
        futures::stream::iter((0..10).map(|_| Ok(watcher::Event::Apply(Counted(&CLONES)))));
    let [a, b, c] = fan_out(source, futures::future::pending(), "test");
    let (a, b, c) = futures::join!(
        a.collect::<Vec<_>>(),
        b.collect::<Vec<_>>(),
        c.collect::<Vec<_>>()
    );
    assert_eq!((a.len(), b.len(), c.len()), (10, 10, 10));
    // The queues hold one shared event; each consumer but the last copies it as it takes
    // it (a copy per consumer queued would be 30).
    assert_eq!(CLONES.load(std::sync::atomic::Ordering::SeqCst), 20);
}
