//! OSS request signing, V4 or V1, for every request OpenDAL sends.
//!
//! OpenDAL 0.59's OSS service only signs V1. We build its operator with `skip_signature` and
//! install this HTTP transport instead: it signs each outgoing request with reqsign-aliyun-oss's
//! signer configured for the chosen version and region, then hands it to reqwest. The same
//! transport serves the requests of `oss_api` (the CRC64 HEAD, GetBucketWorm).
//!
//! Credentials come from an AccessKey pair (with its STS token), or from the ECS instance's RAM
//! role through the instance metadata service: reqsign's signer caches them and fetches new ones
//! when they are within two minutes of expiring, so a long upload outlives any one token.

use http::header::{AUTHORIZATION, DATE};
use http::{Request, Response};
use opendal::{Buffer, HttpBody, HttpTransport, HttpTransporter};
use reqsign_aliyun_oss::{
    Credential, EcsRamRoleCredentialProvider, RequestSigner, SigningVersion,
    StaticCredentialProvider,
};
use reqsign_core::{Context, HttpSend, Signer};

use super::target::{OssCredentials, SignatureVersion};

/// Signs, then forwards to the inner (reqwest) transport.
pub struct OssSigningTransport {
    inner: HttpTransporter,
    signer: Signer<Credential>,
    /// Where the credentials come from, for the error when they cannot be had.
    source: String,
}

impl OssSigningTransport {
    pub fn new(
        inner: HttpTransporter,
        bucket: &str,
        region: Option<&str>,
        version: SignatureVersion,
        credentials: &OssCredentials,
    ) -> Self {
        let mut request_signer = RequestSigner::new(bucket);
        if let Some(region) = region {
            request_signer = request_signer.with_region(region);
        }
        request_signer = request_signer.with_signing_version(match version {
            SignatureVersion::V1 => SigningVersion::V1,
            SignatureVersion::V4 => SigningVersion::V4,
        });
        let signer = match credentials {
            OssCredentials::AccessKey {
                access_key_id,
                access_key_secret,
                security_token,
            } => {
                let mut provider =
                    StaticCredentialProvider::new(access_key_id, access_key_secret.expose());
                if let Some(token) = security_token {
                    provider = provider.with_security_token(token.expose());
                }
                (
                    Signer::new(Context::new(), provider, request_signer),
                    "accessKeyId/accessKeySecret".to_string(),
                )
            }
            OssCredentials::EcsRamRole { role } => {
                let mut provider = EcsRamRoleCredentialProvider::new();
                if let Some(role) = role {
                    provider = provider.with_role_name(role);
                }
                let endpoint = crate::hooks::ecs_metadata_endpoint()
                    .unwrap_or_else(|| "http://100.100.100.200".to_string());
                provider = provider.with_endpoint(&endpoint);
                let context = Context::new().with_http_send(MetadataHttp::new());
                let source = format!(
                    "the ECS instance metadata service at {endpoint} (oss_credentials=ecs_ram_role needs an ECS instance with a RAM role{})",
                    role.as_deref().map(|r| format!(" named {r}")).unwrap_or_default()
                );
                (Signer::new(context, provider, request_signer), source)
            }
        };
        let (signer, source) = signer;
        OssSigningTransport {
            inner,
            signer,
            source,
        }
    }
}

/// The HTTP client of the instance metadata service: direct (never through a proxy), quick to
/// give up (it answers in milliseconds on an instance, and not at all elsewhere).
#[derive(Debug)]
struct MetadataHttp(reqwest::Client);

impl MetadataHttp {
    fn new() -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(std::time::Duration::from_secs(3))
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        MetadataHttp(client)
    }
}

impl HttpSend for MetadataHttp {
    async fn http_send(
        &self,
        req: http::Request<bytes::Bytes>,
    ) -> reqsign_core::Result<http::Response<bytes::Bytes>> {
        let failed = |e: reqwest::Error| {
            reqsign_core::Error::unexpected("the instance metadata service did not answer")
                .with_source(e)
                .set_retryable(true)
        };
        let req = reqwest::Request::try_from(req).map_err(failed)?;
        let resp = self.0.execute(req).await.map_err(failed)?;
        let mut out = http::Response::builder().status(resp.status());
        for (name, value) in resp.headers() {
            out = out.header(name, value);
        }
        let body = resp.bytes().await.map_err(failed)?;
        out.body(body).map_err(|e| {
            reqsign_core::Error::unexpected("bad metadata service response").with_source(e)
        })
    }
}

impl HttpTransport for OssSigningTransport {
    async fn fetch(&self, req: Request<Buffer>) -> opendal::Result<Response<HttpBody>> {
        let (mut parts, body) = req.into_parts();
        // Anything a previous attempt signed is signed again: retries must carry a fresh date.
        for name in [
            AUTHORIZATION.as_str(),
            DATE.as_str(),
            "x-oss-date",
            "x-oss-content-sha256",
        ] {
            parts.headers.remove(name);
        }
        self.signer.sign(&mut parts, None).await.map_err(|e| {
            // The credentials could not be had (the metadata service): say why, not retried.
            opendal::Error::new(
                opendal::ErrorKind::PermissionDenied,
                format!(
                    "cannot sign the OSS request: {}, from {}",
                    e.to_string().trim_end_matches([':', ' ', ',']),
                    self.source
                ),
            )
            .set_source(e)
        })?;
        self.inner.fetch(Request::from_parts(parts, body)).await
    }
}
