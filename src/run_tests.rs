//! The controllers' watches, counted on a client whose API server is a stub: each kind that
//! several controllers read is watched once in the process (`runtime::shared`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::client::Body;

use super::*;

/// What the stub answers: discovery of Cluster API's group (Clusters served as v1beta2), an
/// empty list for every list, and a watch that never answers (so each watch is asked once).
async fn answer(uri: http::Uri) -> Option<String> {
    if uri.query().is_some_and(|q| q.contains("watch=true")) {
        return futures::future::pending().await;
    }
    let body = match uri.path() {
        "/apis" => serde_json::json!({
            "kind": "APIGroupList", "apiVersion": "v1",
            "groups": [{
                "name": "cluster.x-k8s.io",
                "versions": [{"groupVersion": "cluster.x-k8s.io/v1beta2", "version": "v1beta2"}],
                "preferredVersion": {"groupVersion": "cluster.x-k8s.io/v1beta2", "version": "v1beta2"}
            }]
        }),
        "/apis/cluster.x-k8s.io/v1beta2" => serde_json::json!({
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "cluster.x-k8s.io/v1beta2",
            "resources": [{"name": "clusters", "singularName": "cluster", "namespaced": true,
                "kind": "Cluster", "verbs": ["get", "list", "watch"]}]
        }),
        _ => serde_json::json!({
            "apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": []
        }),
    };
    Some(body.to_string())
}

/// The watch requests the stub received: (resource path, metadata only, label selector) →
/// count.
type Watches = Arc<Mutex<BTreeMap<(String, bool, String), usize>>>;

fn stub_client(watches: Watches) -> Client {
    let service = tower::service_fn(move |request: Request<Body>| {
        let watches = Arc::clone(&watches);
        async move {
            if request
                .uri()
                .query()
                .is_some_and(|q| q.contains("watch=true"))
            {
                let metadata_only = request
                    .headers()
                    .get(http::header::ACCEPT)
                    .and_then(|a| a.to_str().ok())
                    .is_some_and(|a| a.contains("PartialObjectMetadata"));
                let selector = request
                    .uri()
                    .query()
                    .unwrap_or_default()
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("labelSelector="))
                    .unwrap_or_default()
                    .to_string();
                let key = (request.uri().path().to_string(), metadata_only, selector);
                *watches.lock().unwrap().entry(key).or_default() += 1;
            }
            let body = answer(request.uri().clone()).await.unwrap_or_default();
            Ok::<_, Infallible>(Response::new(Body::from(body.into_bytes())))
        }
    });
    Client::new(service, "default")
}

#[tokio::test]
async fn each_kind_is_watched_once_however_many_controllers_read_it() {
    let watches = Watches::default();
    let client = stub_client(Arc::clone(&watches));
    let ctx = Arc::new(Context::new(
        client,
        Arc::new(Metrics::default()),
        None,
        None,
    ));
    let (stop, mut stopped) = watch::channel(false);
    let shutdown = async move {
        let _ = stopped.wait_for(|s| *s).await;
    }
    .shared();
    let running = tokio::spawn(run_controllers(ctx, shutdown));
    // Every watcher lists, then watches; the stub answers at once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop.send(true);
    running.abort();
    let counted = watches.lock().unwrap().clone();
    let count = |path: &str, metadata_only: bool| {
        counted
            .get(&(path.to_string(), metadata_only, String::new()))
            .copied()
            .unwrap_or_default()
    };
    assert_eq!(
        count("/apis/cluster.x-k8s.io/v1beta2/clusters", false),
        1,
        "one Cluster watch for the three controllers: {counted:?}"
    );
    let control_planes = "/apis/controlplane.cluster.x-k8s.io/v1beta1/captcontrolplanes";
    assert_eq!(
        count(control_planes, true),
        1,
        "one metadata watch of control planes for the apply and CAPTCluster controllers: {counted:?}"
    );
    assert_eq!(
        count(control_planes, false),
        1,
        "the control plane controller's own: {counted:?}"
    );
    // No selection of any kind is watched twice (the CAPTCluster controller's VPC applies,
    // selected by label, are a watch of their own).
    for ((path, _, selector), n) in &counted {
        assert_eq!(*n, 1, "{path}?{selector} is watched {n} times: {counted:?}");
    }
}

/// A local HTTP server for the client's limits: every request is held `hold`, and counted while
/// held; `…/configmaps/hang` is never answered. Answers a ConfigMap named "x".
async fn counting_server(hold: std::time::Duration) -> (String, Arc<Held>) {
    use std::sync::atomic::Ordering;
    let held = Arc::new(Held::default());
    let counting = Arc::clone(&held);
    let app = axum::Router::new().fallback(move |uri: http::Uri| {
        let held = Arc::clone(&counting);
        async move {
            if uri.path().ends_with("/hang") {
                futures::future::pending::<()>().await;
            }
            let now = held.now.fetch_add(1, Ordering::SeqCst) + 1;
            held.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(hold).await;
            held.now.fetch_sub(1, Ordering::SeqCst);
            let cm = serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "x", "namespace": "default", "resourceVersion": "1"}
            });
            (
                [(http::header::CONTENT_TYPE, "application/json")],
                cm.to_string(),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, held)
}

/// Requests the counting server holds: now, and at most.
#[derive(Default)]
struct Held {
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

fn limited_client(url: &str, in_flight: usize, answer_within: std::time::Duration) -> Client {
    let limits = RequestLimits {
        in_flight: std::num::NonZeroUsize::new(in_flight).unwrap(),
        answer_within,
    };
    client_for(Config::new(url.parse().unwrap()), Some(limits), None).unwrap()
}

/// At most `in_flight` requests reach the API server at once, however many are made: twelve
/// reads at once, each answered after 200 ms.
#[tokio::test]
async fn requests_in_flight_are_capped() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use std::time::Duration;

    let (url, held) = counting_server(Duration::from_millis(200)).await;
    let client = limited_client(&url, 3, Duration::from_secs(60));
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, "default");
    let read = futures::future::join_all((0..12).map(|_| api.get("x"))).await;
    assert!(read.iter().all(|r| {
        r.as_ref()
            .is_ok_and(|cm| cm.metadata.name.as_deref() == Some("x"))
    }));
    let most = held.most.load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..=3).contains(&most), "{most} at once, at most 3");
}

/// A request the API server never answers fails after `answer_within` and gives its place back:
/// with one place, the next request is answered.
#[tokio::test]
async fn an_unanswered_request_gives_its_place_back() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use std::time::Duration;

    let (url, _) = counting_server(Duration::ZERO).await;
    let client = limited_client(&url, 1, Duration::from_millis(300));
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, "default");
    let started = std::time::Instant::now();
    let hung = api.get("hang").await;
    assert!(hung.is_err(), "{hung:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let read = tokio::time::timeout(Duration::from_secs(5), api.get("x"))
        .await
        .expect("the place was given back");
    assert_eq!(read.unwrap().metadata.name.as_deref(), Some("x"));
}
