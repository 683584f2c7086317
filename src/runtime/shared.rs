//! The WorkspaceTemplateApply and Secret watches, shared by both controllers.
//!
//! Both controllers need every apply and every connection secret. One watch and one cache per
//! kind, with each event handed to both controllers, halves what the API server sends for
//! these kinds and what this process decodes and keeps, and lets each controller see the
//! other's writes in the same cache.
//!
//! Replaces kube-runtime's shared streams (`reflect_shared` into a `store_shared`, consumed
//! with `Controller::for_shared_stream`): they do not dispatch deletions (kube-rs#1590), and a
//! controller must see a child's deletion to recreate it or finish a cleanup.
//! Here every watch event, deletions and relists included, reaches both consumers.

use std::future::Future;
use std::sync::Arc;

use futures::channel::mpsc;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use tracing::warn;

use super::backoff::WatchBackoff;
use super::cache::{self, Cache};
use super::index;
use crate::api::WorkspaceTemplateApply;

/// Watch events as a controller consumes them; errors are logged where the watch is polled.
pub type Events<K> = BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>;

/// One controller's share of the watches.
pub struct Watched {
    /// WorkspaceTemplateApplies, shared with the other controller.
    pub applies: Cache<WorkspaceTemplateApply>,
    /// The apply watch's events, after the cache has taken them.
    pub apply_events: Events<WorkspaceTemplateApply>,
    /// Secrets with their key names and value digests (see `key_names_only`).
    pub secrets: Cache<Secret>,
    /// The Secret watch's events, after the cache has taken them.
    pub secret_events: Events<Secret>,
}

/// The shares of both controllers: `[control plane, apply]`, watching `apply_api` with
/// `apply_config` (`Context::filtered_watch`: the watch filter, if any) and `secret_api` (the
/// operator's scope) with `config` (`Context::watcher_config`). The watches run until
/// `shutdown`.
pub fn start<F>(
    apply_api: Api<WorkspaceTemplateApply>,
    apply_config: watcher::Config,
    secret_api: Api<Secret>,
    config: watcher::Config,
    shutdown: F,
) -> [Watched; 2]
where
    F: Future<Output = ()> + Clone + Send + 'static,
{
    let config = || config.clone();
    let (applies, apply_source) = cache::watch(
        watcher(apply_api, apply_config).backoff(WatchBackoff::for_controller()),
        cache::keep_all,
        Some(apply_index_keys),
    );
    let (secrets, secret_source) = cache::watch(
        watcher(secret_api, config()).backoff(WatchBackoff::for_controller()),
        key_names_only,
        None,
    );
    let [cp_applies, apply_applies] = fan_out(apply_source, shutdown.clone(), "applies");
    let [cp_secrets, apply_secrets] = fan_out(secret_source, shutdown, "secrets");
    [
        Watched {
            applies: applies.clone(),
            apply_events: cp_applies,
            secrets: secrets.clone(),
            secret_events: cp_secrets,
        },
        Watched {
            applies,
            apply_events: apply_applies,
            secrets,
            secret_events: apply_secrets,
        },
    ]
}

/// What applies are looked up by: their owners (a control plane's profile applies), the
/// Secrets they wait for, the WorkspaceTemplate they use and their Cluster (whose changes
/// wake them).
fn apply_index_keys(apply: &WorkspaceTemplateApply) -> Vec<String> {
    let owners = apply
        .owner_references()
        .iter()
        .map(|o| index::owner(&o.uid));
    let secrets = apply
        .spec
        .wait_for_secrets
        .iter()
        .flatten()
        .map(|s| index::secret(&s.namespace, &s.name));
    let template = index::template(&apply.template_namespace(), &apply.spec.template_ref.name);
    // Its Cluster API Cluster, whose pause holds it (`control_plane::pause`).
    let cluster = apply
        .labels()
        .get(crate::names::LABEL_CLUSTER_NAME)
        .map(|c| index::cluster(&apply.namespace().unwrap_or_default(), c));
    owners
        .chain(secrets)
        .chain([template])
        .chain(cluster)
        .collect()
}

/// Prefix of the annotations this operator writes on Secrets.
const OWN_ANNOTATION_PREFIX: &str = "fargate.capt.cluster.x-k8s.io/";

/// Secret values never enter the cache: each is replaced by its SHA-256 (32 bytes), enough to
/// see that a kubeconfig Secret's `value` is still what the operator wrote. The exceptions are
/// the public keys of EKS connection secrets (`render::kubeconfig::PUBLIC_KEYS`: endpoint, CA
/// and cluster name, which EKS's DescribeCluster returns to anyone allowed to call it), kept as
/// they are because the endpoint and the kubeconfigs are built from them. Annotations go but
/// this operator's own (`fargate.capt.cluster.x-k8s.io/…`: the kubeconfig Secrets' source,
/// value digest and token expiry, which the kubeconfig step compares): nothing reads the
/// others, and one such as kubectl's last-applied configuration may repeat the values. Labels
/// stay: a kubeconfig Secret's `cluster.x-k8s.io/cluster-name` is compared.
pub fn key_names_only(secret: &mut Secret) {
    use sha2::{Digest, Sha256};
    if let Some(annotations) = secret.metadata.annotations.as_mut() {
        annotations.retain(|k, _| k.starts_with(OWN_ANNOTATION_PREFIX));
        if annotations.is_empty() {
            secret.metadata.annotations = None;
        }
    }
    let connection = secret
        .metadata
        .name
        .as_deref()
        .is_some_and(|n| n.ends_with(crate::names::EKS_CONNECTION_SUFFIX));
    for (key, value) in secret.data.iter_mut().flat_map(|d| d.iter_mut()) {
        if connection && crate::render::kubeconfig::PUBLIC_KEYS.contains(&key.as_str()) {
            continue;
        }
        *value = ByteString(Sha256::digest(&value.0).to_vec());
    }
    secret.string_data = None;
}

/// Polls `source` (which feeds its cache first) and hands each event to `N` consumers. A
/// failed watch is logged and retried with backoff by `source` itself.
///
/// The consumers share one copy of each event (an `Arc`), cloned only as each takes it (the
/// last one takes it as it is): a relist's events wait in these queues until the controllers
/// drain them, and a copy per consumer made a restarted operator's peak memory (BENCHMARKS.md).
pub(crate) fn fan_out<K, S, F, const N: usize>(
    source: S,
    shutdown: F,
    kind: &'static str,
) -> [Events<K>; N]
where
    K: Clone + Send + Sync + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..N).map(|_| mpsc::unbounded()).unzip();
    let forward = source.for_each(move |item| {
        match item {
            Ok(event) => {
                let event = Arc::new(event);
                // A consumer that stopped (its controller shut down) is simply skipped.
                for tx in &senders {
                    let _ = tx.unbounded_send(Arc::clone(&event));
                }
            }
            Err(error) => warn!(kind, %error, "watch failed; retrying"),
        }
        futures::future::ready(())
    });
    tokio::spawn(async move {
        tokio::select! {
            _ = forward => {}
            _ = shutdown => {}
        }
    });
    let streams: Vec<Events<K>> = receivers
        .into_iter()
        .map(|rx: mpsc::UnboundedReceiver<Arc<watcher::Event<K>>>| {
            rx.map(|event| Ok(Arc::unwrap_or_clone(event))).boxed()
        })
        .collect();
    streams
        .try_into()
        .unwrap_or_else(|_| unreachable!("one stream per consumer"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    #[test]
    fn secrets_keep_key_names_but_no_values() {
        use sha2::Digest;
        let mut secret = Secret {
            metadata: ObjectMeta {
                name: Some("eks-connection".into()),
                labels: Some([("app".to_string(), "x".to_string())].into()),
                annotations: Some(
                    [(
                        "kubectl.kubernetes.io/last-applied-configuration".to_string(),
                        r#"{"data":{"kubeconfig":"c2VjcmV0"}}"#.to_string(),
                    )]
                    .into(),
                ),
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
        key_names_only(&mut secret);
        let data = secret.data.expect("data kept");
        assert_eq!(data.keys().collect::<Vec<_>>(), ["kubeconfig"]);
        assert_eq!(
            data["kubeconfig"].0,
            sha2::Sha256::digest(b"secret").to_vec(),
            "a digest, never the value"
        );
        assert_eq!(secret.string_data, None);
        assert_eq!(secret.metadata.annotations, None, "may repeat the values");
        assert_eq!(secret.metadata.name.as_deref(), Some("eks-connection"));
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
    fn an_eks_connection_secret_keeps_its_public_values_only() {
        use sha2::Digest;
        let pairs = [
            ("cluster_endpoint", "https://a.example"),
            ("cluster_certificate_authority_data", "Q0E="),
            ("cluster_name", "demo"),
            ("oidc_provider_arn", "arn"),
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
        let mut connection = secret("demo-eks-connection");
        key_names_only(&mut connection);
        let data = connection.data.unwrap();
        for (key, value) in &pairs[..3] {
            assert_eq!(data[*key].0, value.as_bytes(), "{key} kept");
        }
        assert_eq!(
            data["oidc_provider_arn"].0,
            sha2::Sha256::digest(b"arn").to_vec()
        );
        // The same keys in any other secret are not kept.
        let mut other = secret("demo-vpc-connection");
        key_names_only(&mut other);
        assert_eq!(
            other.data.unwrap()["cluster_endpoint"].0,
            sha2::Sha256::digest(b"https://a.example").to_vec()
        );
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
}
