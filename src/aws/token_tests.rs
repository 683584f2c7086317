use super::*;
use sha2::{Digest, Sha256};

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// 2026-11-30T12:00:00Z.
fn at() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_040_000)
}

fn credentials(session: Option<&str>) -> Credentials {
    Credentials::new(AKID, SECRET, session.map(String::from), None, "test")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// HMAC-SHA256 from RFC 2104, written out so the check does not share code with the signer.
fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::digest([pad(0x36), message.to_vec()].concat());
    Sha256::digest([pad(0x5c), inner.to_vec()].concat()).to_vec()
}

/// RFC 3986 unreserved characters stay, everything else is %XX (SigV4's URI encoding).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The presigned URL computed from the SigV4 specification alone (AWS General Reference,
/// "Create a signed AWS API request": canonical request, string to sign, signing key).
fn spec_url(region: &str, cluster: &str, session: Option<&str>) -> String {
    let (date, day) = ("20261130T120000Z", "20261130");
    let scope = format!("{day}/{region}/sts/aws4_request");
    let host = format!("sts.{region}.amazonaws.com");
    let mut query = vec![
        ("Action".to_string(), "GetCallerIdentity".to_string()),
        ("Version".to_string(), "2011-06-15".to_string()),
        (
            "X-Amz-Algorithm".to_string(),
            "AWS4-HMAC-SHA256".to_string(),
        ),
        ("X-Amz-Credential".to_string(), format!("{AKID}/{scope}")),
        ("X-Amz-Date".to_string(), date.to_string()),
        ("X-Amz-Expires".to_string(), "60".to_string()),
        (
            "X-Amz-SignedHeaders".to_string(),
            "host;x-k8s-aws-id".to_string(),
        ),
    ];
    if let Some(token) = session {
        query.push(("X-Amz-Security-Token".to_string(), token.to_string()));
    }
    let mut encoded: Vec<(String, String)> =
        query.iter().map(|(k, v)| (encode(k), encode(v))).collect();
    encoded.sort();
    let canonical_query = encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let canonical_request = format!(
        "GET\n/\n{canonical_query}\nhost:{host}\nx-k8s-aws-id:{cluster}\n\nhost;x-k8s-aws-id\n{}",
        hex(&Sha256::digest(b""))
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{SECRET}").as_bytes(), day.as_bytes());
    for part in [region, "sts", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    format!("https://{host}/?{canonical_query}&X-Amz-Signature={signature}")
}

/// The query parameters of a URL, decoded, in order.
fn params(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').expect("a query").1;
    query
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("key=value");
            let decode = |s: &str| {
                let mut out = Vec::new();
                let bytes = s.as_bytes();
                let mut i = 0;
                while i < bytes.len() {
                    if bytes[i] == b'%' {
                        out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                        i += 3;
                    } else {
                        out.push(bytes[i]);
                        i += 1;
                    }
                }
                String::from_utf8(out).unwrap()
            };
            (decode(k), decode(v))
        })
        .collect()
}

#[test]
fn the_presigned_url_has_the_query_eks_expects() {
    let url = presigned_url(&credentials(None), "us-east-1", "demo", at()).unwrap();
    assert!(
        url.starts_with("https://sts.us-east-1.amazonaws.com/?"),
        "{url}"
    );
    let params = params(&url);
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("Action"), Some("GetCallerIdentity"));
    assert_eq!(get("Version"), Some("2011-06-15"));
    assert_eq!(get("X-Amz-Algorithm"), Some("AWS4-HMAC-SHA256"));
    assert_eq!(
        get("X-Amz-Credential"),
        Some("AKIDEXAMPLE/20261130/us-east-1/sts/aws4_request")
    );
    assert_eq!(get("X-Amz-Date"), Some("20261130T120000Z"));
    assert_eq!(get("X-Amz-Expires"), Some("60"));
    assert_eq!(get("X-Amz-SignedHeaders"), Some("host;x-k8s-aws-id"));
    assert_eq!(get("X-Amz-Security-Token"), None);
    let signature = get("X-Amz-Signature").expect("a signature");
    assert_eq!(signature.len(), 64);
    assert!(signature.chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn the_presigned_url_matches_the_sigv4_specification() {
    for (region, cluster, session) in [
        ("us-east-1", "demo", None),
        (
            "ap-northeast-1",
            "demo-cluster_2",
            Some("FwoGZXIvYXdzE+/session="),
        ),
    ] {
        let signed = presigned_url(&credentials(session), region, cluster, at()).unwrap();
        let expected = spec_url(region, cluster, session);
        assert_eq!(
            params(&signed)
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>(),
            params(&expected).into_iter().collect(),
            "{region} {cluster}"
        );
    }
}

#[test]
fn a_known_answer_token() {
    // Pinned: computed from the specification by `spec_url` and, independently, by a
    // Python script with hmac/hashlib only (fixed key, time, region and cluster).
    let token = eks_token(
        &credentials(None),
        TokenRequest {
            eks_cluster: "demo",
            region: "us-east-1",
        },
        at(),
    )
    .unwrap();
    let url = spec_url("us-east-1", "demo", None);
    assert_eq!(
        url,
        "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261130%2Fus-east-1%2Fsts%2Faws4_request&X-Amz-Date=20261130T120000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature=e58639f16d737c952058a68b2b7af873092c8e1f99277cd72a6c31552c841e81"
    );
    assert!(token.value.starts_with("k8s-aws-v1."));
    assert!(
        !token.value.contains(['=', '+', '/']),
        "base64url, unpadded"
    );
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&token.value["k8s-aws-v1.".len()..])
        .unwrap();
    assert_eq!(params(&String::from_utf8(decoded).unwrap()), params(&url));
    assert_eq!(token.expires, Some(at() + Duration::from_secs(900)));
    assert!(format!("{token:?}").contains("<redacted>"));
    assert!(!format!("{token:?}").contains("k8s-aws-v1"));
}

#[tokio::test]
async fn the_static_source_reads_its_file_and_never_expires() {
    let dir = std::env::temp_dir().join(format!("capt-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "abc\n").unwrap();
    let request = TokenRequest {
        eks_cluster: "c",
        region: "r",
    };
    let token = StaticTokenSource::from_file(&file)
        .token(request)
        .await
        .unwrap();
    assert_eq!((token.value.as_str(), token.expires), ("abc", None));
    let missing = StaticTokenSource::from_file(dir.join("none"))
        .token(request)
        .await;
    assert!(matches!(missing, Err(TokenError::Static(_))));
    let none = NoTokenSource.token(request).await.unwrap_err();
    assert!(none.is_no_credentials());
    assert!(none.to_string().contains("IRSA"), "{none}");
}
