//! Pure: what the EKS connection secret says about the cluster's API server (endpoint and CA),
//! the `spec.controlPlaneEndpoint` taken from it, and the two kubeconfig Secrets Cluster API
//! and people use (`<cluster>-kubeconfig` with a bearer token, `<cluster>-user-kubeconfig` with
//! an `aws eks get-token` exec entry).
//!
//! The endpoint and the CA are public data (EKS's `DescribeCluster` returns both); the token is
//! a credential and only ever goes into the Secret's `value`, never into a message or a log.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;
use serde_json::json;

use crate::api::ApiEndpoint;
use crate::names;

/// Key of the EKS connection secret holding the API server URL (`https://<host>[:<port>]`).
pub const KEY_ENDPOINT: &str = "cluster_endpoint";
/// Key holding the cluster CA: base64 of its PEM bundle, as EKS reports it.
pub const KEY_CA: &str = "cluster_certificate_authority_data";
/// Key holding the EKS cluster name.
pub const KEY_CLUSTER_NAME: &str = "cluster_name";
/// The keys of the EKS connection secret whose values the operator reads. All are public
/// (EKS `DescribeCluster` returns them), so the Secret cache keeps these values.
pub const PUBLIC_KEYS: &[&str] = &[KEY_ENDPOINT, KEY_CA, KEY_CLUSTER_NAME];

/// Secret type Cluster API gives its cluster secrets (the kubeconfig contract).
pub const SECRET_TYPE: &str = "cluster.x-k8s.io/secret";
/// Key of the kubeconfig in both Secrets (the Cluster API contract).
pub const KEY_VALUE: &str = "value";
/// Annotation on the kubeconfig Secrets: SHA-256 (hex) of the endpoint, CA, names and region
/// they were rendered from (not of the token), to see when they are stale.
pub const ANNOTATION_SOURCE: &str = "fargate.capt.cluster.x-k8s.io/kubeconfig-source";
/// Annotation on the kubeconfig Secrets: SHA-256 (hex) of the `value` written, to see a hand
/// edit (the Secret cache keeps digests of values, never values).
pub const ANNOTATION_VALUE_DIGEST: &str = "fargate.capt.cluster.x-k8s.io/value-sha256";
/// Annotation on the token kubeconfig Secret: when its token expires (RFC 3339, UTC); absent
/// for a token that does not expire (the test-only static source).
pub const ANNOTATION_TOKEN_EXPIRES: &str = "fargate.capt.cluster.x-k8s.io/token-expires-at";

/// The kubeconfig Secret Cluster API reads: `<cluster>-kubeconfig`.
pub fn secret_name(cluster: &str) -> String {
    format!("{cluster}-kubeconfig")
}

/// The kubeconfig Secret for people: `<cluster>-user-kubeconfig`.
pub fn user_secret_name(cluster: &str) -> String {
    format!("{cluster}-user-kubeconfig")
}

/// Why the EKS connection secret cannot give a kubeconfig. Each message names the key and the
/// shape expected; values are not quoted (the CA can be long, and nothing of a Secret goes
/// into status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// A key is absent or empty.
    #[error(
        "key {key} of the EKS connection secret is missing or empty; expected {expected} (provider-terraform writes it from the EKS workspace's output of that name)"
    )]
    Missing {
        /// The key.
        key: &'static str,
        /// The shape expected.
        expected: &'static str,
    },
    /// A key holds a value of the wrong shape.
    #[error("key {key} of the EKS connection secret is malformed: {problem}; expected {expected}")]
    Malformed {
        /// The key.
        key: &'static str,
        /// What is wrong.
        problem: String,
        /// The shape expected.
        expected: &'static str,
    },
}

const ENDPOINT_SHAPE: &str = "an https URL such as https://ABC123.gr7.us-east-1.eks.amazonaws.com, with an optional port and no path";
const CA_SHAPE: &str = "base64 of a PEM bundle of one or more CERTIFICATE blocks";

/// The API server endpoint, parsed from the connection secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address, without scheme or port (IPv6 without brackets).
    pub host: String,
    /// Port: the URL's, else 443.
    pub port: u16,
}

impl Endpoint {
    /// The server URL a kubeconfig names: `https://host` (443 left implicit) or
    /// `https://host:port`.
    pub fn url(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 443 {
            format!("https://{host}")
        } else {
            format!("https://{host}:{}", self.port)
        }
    }

    /// As Cluster API's `controlPlaneEndpoint`.
    pub fn api_endpoint(&self) -> ApiEndpoint {
        ApiEndpoint {
            host: self.host.clone(),
            port: i32::from(self.port),
        }
    }
}

/// Parses `cluster_endpoint`: `https://<host>[:<port>][/]`. The host is a DNS name or an IP
/// address; user info, a path, a query or another scheme are refused.
pub fn parse_endpoint(raw: &str) -> Result<Endpoint, ConnectionError> {
    let malformed = |problem: &str| ConnectionError::Malformed {
        key: KEY_ENDPOINT,
        problem: problem.to_string(),
        expected: ENDPOINT_SHAPE,
    };
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(ConnectionError::Missing {
            key: KEY_ENDPOINT,
            expected: ENDPOINT_SHAPE,
        });
    }
    let rest = match raw.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => rest,
        Some(_) => return Err(malformed("the scheme is not https")),
        None => return Err(malformed("it has no https:// scheme")),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#']) {
        return Err(malformed("it has a path, query or fragment"));
    }
    if authority.contains('@') {
        return Err(malformed("it has user information"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| malformed("an IPv6 address lacks its closing ]"))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(malformed("the bracketed host is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| malformed("text follows the IPv6 address"))?,
            ),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => 443,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(malformed("the port is not a number from 1 to 65535")),
        },
    };
    if host.is_empty() {
        return Err(malformed("the host is empty"));
    }
    let dns_ok = host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !(dns_ok || host.parse::<std::net::IpAddr>().is_ok()) {
        return Err(malformed(
            "the host is neither a DNS name nor an IP address",
        ));
    }
    Ok(Endpoint {
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// Checks `cluster_certificate_authority_data`: base64 (standard alphabet) of a PEM bundle
/// with at least one complete `CERTIFICATE` block whose body is base64 itself. Returns the
/// value as a kubeconfig's `certificate-authority-data` takes it (whitespace removed).
pub fn parse_ca(raw: &str) -> Result<String, ConnectionError> {
    let malformed = |problem: &str| ConnectionError::Malformed {
        key: KEY_CA,
        problem: problem.to_string(),
        expected: CA_SHAPE,
    };
    let compact: String = raw.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(ConnectionError::Missing {
            key: KEY_CA,
            expected: CA_SHAPE,
        });
    }
    let pem = base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .map_err(|_| malformed("it is not base64"))?;
    let pem = String::from_utf8(pem).map_err(|_| malformed("it does not decode to PEM text"))?;
    let mut blocks = 0;
    let mut rest = pem.as_str();
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let after = &rest[start + "-----BEGIN CERTIFICATE-----".len()..];
        let end = after
            .find("-----END CERTIFICATE-----")
            .ok_or_else(|| malformed("a CERTIFICATE block has no END line"))?;
        let body: String = after[..end]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        if body.is_empty()
            || base64::engine::general_purpose::STANDARD
                .decode(&body)
                .is_err()
        {
            return Err(malformed("a CERTIFICATE block's body is not base64"));
        }
        blocks += 1;
        rest = &after[end..];
    }
    if blocks == 0 {
        return Err(malformed("it decodes to text without a CERTIFICATE block"));
    }
    Ok(compact)
}

/// What the EKS connection secret says about the cluster's API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Where the API server is.
    pub endpoint: Endpoint,
    /// Base64 of the CA's PEM bundle.
    pub ca_data: String,
    /// The EKS cluster name (`cluster_name`), which an IAM token is bound to.
    pub eks_cluster: String,
}

/// Reads the connection from the secret's values (`data`, as the Secret cache keeps them for
/// [`PUBLIC_KEYS`]); `fallback_name` is the EKS cluster name when `cluster_name` is absent.
/// The endpoint is checked first, then the CA.
pub fn connection(
    data: &BTreeMap<String, ByteString>,
    fallback_name: &str,
) -> Result<Connection, ConnectionError> {
    let text = |key: &str| {
        data.get(key)
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .unwrap_or_default()
    };
    let endpoint = parse_endpoint(&text(KEY_ENDPOINT))?;
    let ca_data = parse_ca(&text(KEY_CA))?;
    let name = text(KEY_CLUSTER_NAME).trim().to_string();
    Ok(Connection {
        endpoint,
        ca_data,
        eks_cluster: if name.is_empty() {
            fallback_name.to_string()
        } else {
            name
        },
    })
}

/// How a kubeconfig authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential<'a> {
    /// A bearer token (the EKS IAM token, or a test's token).
    Token(&'a str),
    /// `aws eks get-token` run by the client, for people with the AWS CLI.
    AwsCli {
        /// The AWS region of the cluster.
        region: &'a str,
    },
}

impl std::fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Token(_) => f.write_str("Token(<redacted>)"),
            Credential::AwsCli { region } => write!(f, "AwsCli {{ region: {region:?} }}"),
        }
    }
}

/// A kubeconfig (YAML) for Cluster API cluster `cluster` reaching `conn` with `credential`.
/// Names follow Cluster API's own kubeconfigs: cluster `<cluster>`, user `<cluster>-admin`
/// (`<cluster>-user` for the exec entry), context `<user>@<cluster>`.
pub fn render(cluster: &str, conn: &Connection, credential: &Credential<'_>) -> String {
    let (user_name, user) = match credential {
        Credential::Token(token) => (format!("{cluster}-admin"), json!({ "token": token })),
        Credential::AwsCli { region } => (
            format!("{cluster}-user"),
            json!({
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                    "command": "aws",
                    "args": ["eks", "get-token", "--cluster-name", conn.eks_cluster, "--region", region, "--output", "json"],
                    "interactiveMode": "Never",
                    "provideClusterInfo": false,
                }
            }),
        ),
    };
    let context = format!("{user_name}@{cluster}");
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": cluster,
            "cluster": {
                "server": conn.endpoint.url(),
                "certificate-authority-data": conn.ca_data,
            },
        }],
        "users": [{ "name": user_name, "user": user }],
        "contexts": [{
            "name": context,
            "context": { "cluster": cluster, "user": user_name },
        }],
        "current-context": context,
        "preferences": {},
    });
    serde_saphyr::to_string(&doc).expect("a JSON value always serializes to YAML")
}

/// SHA-256 (hex) of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a kubeconfig Secret is rendered from, besides its credential: when this changes
/// (endpoint or CA rotated, cluster renamed, region changed) the Secret is rewritten.
pub fn source_digest(cluster: &str, conn: &Connection, region: &str) -> String {
    digest(
        format!(
            "{cluster}\n{}\n{}\n{}\n{region}",
            conn.endpoint.url(),
            conn.ca_data,
            conn.eks_cluster
        )
        .as_bytes(),
    )
}

/// A kubeconfig Secret named `name` in `namespace` for Cluster API cluster `cluster`, holding
/// `value`, controller-owned by `owner`, annotated with its `source` digest (and `expires`, the
/// token's expiry, when it holds one that expires).
pub fn secret(
    name: &str,
    namespace: &str,
    cluster: &str,
    owner: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
    value: String,
    source: &str,
    expires: Option<&str>,
) -> Secret {
    let mut annotations = BTreeMap::from([
        (ANNOTATION_SOURCE.to_string(), source.to_string()),
        (
            ANNOTATION_VALUE_DIGEST.to_string(),
            digest(value.as_bytes()),
        ),
    ]);
    if let Some(expires) = expires {
        annotations.insert(ANNOTATION_TOKEN_EXPIRES.to_string(), expires.to_string());
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                names::LABEL_CLUSTER_NAME.to_string(),
                names::label_value(cluster),
            )])),
            annotations: Some(annotations),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.to_string()),
        data: Some(BTreeMap::from([(
            KEY_VALUE.to_string(),
            ByteString(value.into_bytes()),
        )])),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "kubeconfig_tests.rs"]
mod tests;
