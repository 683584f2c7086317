//! The credential of the `<cluster>-kubeconfig` Secret: an EKS IAM token, as `aws eks
//! get-token`, aws-iam-authenticator and CAPA mint it.
//!
//! The token is `k8s-aws-v1.` followed by the unpadded base64url of a SigV4-presigned STS
//! `GetCallerIdentity` URL whose signature covers the header `x-k8s-aws-id: <EKS cluster
//! name>`. EKS calls that URL to learn who is asking, and accepts the token for 15 minutes
//! after its `X-Amz-Date` (EKS user guide, "Cluster authentication"; aws-iam-authenticator
//! README, "API Authorization from Outside a Cluster"), whatever `X-Amz-Expires` says.
//!
//! Where tokens come from is pluggable ([`TokenSource`]): production presigns with AWS
//! credentials ([`AwsTokenSource`]); tests hand a token the test API server accepts
//! ([`StaticTokenSource`], chosen by a flag production never sets). A token is a credential:
//! it is never logged, and `Debug` of [`Token`] hides it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::provider::error::CredentialsError;
use base64::Engine;
use futures::future::BoxFuture;

/// Prefix of an EKS IAM token.
pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// Header binding the token to one cluster (its value is the EKS cluster name).
pub const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";
/// `X-Amz-Expires` of the presigned URL, as aws-iam-authenticator sets it. EKS ignores it and
/// applies [`TOKEN_VALIDITY`].
pub const PRESIGN_EXPIRES: Duration = Duration::from_secs(60);
/// How long EKS accepts a token after its `X-Amz-Date`.
pub const TOKEN_VALIDITY: Duration = Duration::from_secs(15 * 60);
/// How long before expiry a token is replaced: a token lives 10 of its 15 minutes in the
/// Secret, leaving Cluster API's cluster cache time to reconnect with the new one.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The operator has no AWS credentials at all.
    #[error(
        "the operator has no AWS credentials ({0}); give its ServiceAccount an IAM role (IRSA: the eks.amazonaws.com/role-arn annotation, or an EKS Pod Identity association) or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and grant that role an EKS access entry (the EKS module's operator_role_arn variable)"
    )]
    NoCredentials(String),
    /// Credentials exist but could not be loaded now (STS or the Pod Identity agent failed);
    /// retried.
    #[error("cannot load the operator's AWS credentials: {0}; retrying")]
    Credentials(String),
    /// The request could not be presigned (a region or cluster name no URL can carry).
    #[error("cannot presign the EKS token request: {0}")]
    Sign(String),
    /// The test-only static source could not read its token.
    #[error("cannot read the static token: {0}")]
    Static(String),
}

impl TokenError {
    /// Whether the operator lacks credentials altogether (reported as such; not retried soon).
    pub fn is_no_credentials(&self) -> bool {
        matches!(self, TokenError::NoCredentials(_))
    }
}

/// A bearer token and when it stops working, if it does.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The token. Never log it.
    pub value: String,
    /// When EKS stops accepting it; None for a token that does not expire (tests).
    pub expires: Option<SystemTime>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("value", &"<redacted>")
            .field("expires", &self.expires)
            .finish()
    }
}

/// What a token is for.
#[derive(Debug, Clone, Copy)]
pub struct TokenRequest<'a> {
    /// The EKS cluster name the token is bound to.
    pub eks_cluster: &'a str,
    /// The cluster's AWS region (STS's regional endpoint is used).
    pub region: &'a str,
}

/// Where the kubeconfig's token comes from.
pub trait TokenSource: Send + Sync {
    /// A fresh token for `request`.
    fn token<'a>(&'a self, request: TokenRequest<'a>) -> BoxFuture<'a, Result<Token, TokenError>>;
}

/// The presigned STS `GetCallerIdentity` URL for `eks_cluster` in `region`, signed with
/// `credentials` at `at` (`X-Amz-Expires` [`PRESIGN_EXPIRES`]; a session token is part of the
/// signed query). Pure: the same inputs give the same URL.
pub fn presigned_url(
    credentials: &Credentials,
    region: &str,
    eks_cluster: &str,
    at: SystemTime,
) -> Result<String, TokenError> {
    use aws_sigv4::http_request::{
        SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
    };
    let url =
        format!("https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_EXPIRES);
    let identity = credentials.clone().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| TokenError::Sign(e.to_string()))?
        .into();
    let headers = [(CLUSTER_ID_HEADER, eks_cluster)];
    let signable = SignableRequest::new(
        "GET",
        url.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| TokenError::Sign(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| TokenError::Sign(e.to_string()))?
        .into_parts();
    let mut request = http::Request::get(url.as_str())
        .body(())
        .map_err(|e| TokenError::Sign(e.to_string()))?;
    instructions.apply_to_request_http1x(&mut request);
    Ok(request.uri().to_string())
}

/// The EKS token for a presigned URL: [`TOKEN_PREFIX`] + unpadded base64url of the URL.
pub fn token_from_url(url: &str) -> String {
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url)
    )
}

/// The EKS token for `request`, minted with `credentials` at `at`, and its expiry.
pub fn eks_token(
    credentials: &Credentials,
    request: TokenRequest<'_>,
    at: SystemTime,
) -> Result<Token, TokenError> {
    let url = presigned_url(credentials, request.region, request.eks_cluster, at)?;
    Ok(Token {
        value: token_from_url(&url),
        expires: Some(at + TOKEN_VALIDITY),
    })
}

/// Presigns with the operator's AWS credentials, found as the AWS SDKs find them, in this
/// order: environment variables (`AWS_ACCESS_KEY_ID`, …), IRSA (`AWS_WEB_IDENTITY_TOKEN_FILE`
/// and `AWS_ROLE_ARN`, exchanged at STS), and EKS Pod Identity or ECS
/// (`AWS_CONTAINER_CREDENTIALS_FULL_URI`). The EC2 instance metadata service is deliberately
/// not asked: the node's role is not the operator's. Credentials are cached until 5 minutes
/// before they expire.
pub struct AwsTokenSource {
    chain: aws_config::meta::credentials::CredentialsProviderChain,
    cached: tokio::sync::Mutex<Option<Credentials>>,
}

impl AwsTokenSource {
    /// The source for this process's environment. STS calls (IRSA) go to `AWS_REGION` (or
    /// `AWS_DEFAULT_REGION`, else us-east-1), as the EKS Pod Identity webhook sets it.
    pub fn from_environment() -> Self {
        use aws_config::ecs::EcsCredentialsProvider;
        use aws_config::environment::EnvironmentVariableCredentialsProvider;
        use aws_config::provider_config::ProviderConfig;
        use aws_config::web_identity_token::WebIdentityTokenCredentialsProvider;
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|_| "us-east-1".into());
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let config = ProviderConfig::without_region()
            .with_http_client(http)
            .with_region(Some(aws_config::Region::new(region)));
        let chain = aws_config::meta::credentials::CredentialsProviderChain::first_try(
            "Environment",
            EnvironmentVariableCredentialsProvider::new(),
        )
        .or_else(
            "WebIdentityToken",
            WebIdentityTokenCredentialsProvider::builder()
                .configure(&config)
                .build(),
        )
        .or_else(
            "EcsContainer",
            EcsCredentialsProvider::builder().configure(&config).build(),
        );
        AwsTokenSource {
            chain,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    async fn credentials(&self) -> Result<Credentials, TokenError> {
        let mut cached = self.cached.lock().await;
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_none_or(|at| at > SystemTime::now() + REFRESH_BEFORE_EXPIRY)
        };
        if let Some(c) = cached.as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let loaded = self
            .chain
            .provide_credentials()
            .await
            .map_err(credentials_error)?;
        *cached = Some(loaded.clone());
        Ok(loaded)
    }
}

/// `CredentialsNotLoaded` means no provider of the chain applies; anything else is a failure
/// of one that does (retried).
fn credentials_error(error: CredentialsError) -> TokenError {
    let text = aws_smithy_types_display(&error);
    match error {
        CredentialsError::CredentialsNotLoaded(_) => TokenError::NoCredentials(
            "no environment variables, web identity token or container credentials".into(),
        ),
        _ => TokenError::Credentials(text),
    }
}

/// The error and its sources, one line (the SDK's errors carry the cause in their sources).
fn aws_smithy_types_display(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl TokenSource for AwsTokenSource {
    fn token<'a>(&'a self, request: TokenRequest<'a>) -> BoxFuture<'a, Result<Token, TokenError>> {
        Box::pin(async move {
            let credentials = self.credentials().await?;
            eks_token(&credentials, request, SystemTime::now())
        })
    }
}

/// TEST ONLY: hands the same bearer token for every cluster, read from a file at each call
/// (or given directly), and says it does not expire. Chosen by `run`'s
/// `--test-only-static-token-file`, which production never sets: such a token is not bound to
/// a cluster, and nothing refreshes it.
pub struct StaticTokenSource {
    from: StaticFrom,
}

enum StaticFrom {
    Value(String),
    File(PathBuf),
}

impl StaticTokenSource {
    /// A source handing `token`.
    pub fn new(token: impl Into<String>) -> Self {
        StaticTokenSource {
            from: StaticFrom::Value(token.into()),
        }
    }

    /// A source handing the (trimmed) content of `path`, read at each call.
    pub fn from_file(path: impl Into<PathBuf>) -> Self {
        StaticTokenSource {
            from: StaticFrom::File(path.into()),
        }
    }
}

impl TokenSource for StaticTokenSource {
    fn token<'a>(&'a self, _: TokenRequest<'a>) -> BoxFuture<'a, Result<Token, TokenError>> {
        Box::pin(async move {
            let value = match &self.from {
                StaticFrom::Value(v) => v.clone(),
                // A small local file, test only: read in place.
                StaticFrom::File(path) => std::fs::read_to_string(path)
                    .map_err(|e| TokenError::Static(format!("{}: {e}", path.display())))?
                    .trim()
                    .to_string(),
            };
            if value.is_empty() {
                return Err(TokenError::Static("the token is empty".into()));
            }
            Ok(Token {
                value,
                expires: None,
            })
        })
    }
}

/// No source: every request fails with [`TokenError::NoCredentials`]. What a [`Context`]
/// starts with, so that nothing reaches for AWS unless `run` (or a test) chooses a source.
///
/// [`Context`]: crate::controller::Context
pub struct NoTokenSource;

impl TokenSource for NoTokenSource {
    fn token<'a>(&'a self, _: TokenRequest<'a>) -> BoxFuture<'a, Result<Token, TokenError>> {
        Box::pin(async {
            Err(TokenError::NoCredentials(
                "no token source is configured".into(),
            ))
        })
    }
}

/// A shared token source.
pub type SharedTokenSource = Arc<dyn TokenSource>;

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
