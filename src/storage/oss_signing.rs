//! OSS request signing, V4 or V1, for every request OpenDAL sends.
//!
//! OpenDAL 0.59's OSS service only signs V1. We build its operator with `skip_signature` and
//! install this HTTP transport instead: it signs each outgoing request with reqsign-aliyun-oss's
//! signer configured for the chosen version and region, then hands it to reqwest. The same
//! transport serves our one raw request, the HEAD that reads `x-oss-hash-crc64ecma` (OpenDAL's
//! metadata does not carry it).

use http::header::{AUTHORIZATION, DATE};
use http::{Request, Response};
use opendal::{Buffer, HttpBody, HttpTransport, HttpTransporter};
use reqsign_aliyun_oss::{Credential, RequestSigner, SigningVersion, StaticCredentialProvider};
use reqsign_core::{Context, Signer};

use super::target::SignatureVersion;

/// Signs, then forwards to the inner (reqwest) transport.
pub struct OssSigningTransport {
    inner: HttpTransporter,
    signer: Signer<Credential>,
}

impl OssSigningTransport {
    pub fn new(
        inner: HttpTransporter,
        bucket: &str,
        region: Option<&str>,
        version: SignatureVersion,
        access_key_id: &str,
        access_key_secret: &str,
    ) -> Self {
        let mut request_signer = RequestSigner::new(bucket);
        if let Some(region) = region {
            request_signer = request_signer.with_region(region);
        }
        request_signer = request_signer.with_signing_version(match version {
            SignatureVersion::V1 => SigningVersion::V1,
            SignatureVersion::V4 => SigningVersion::V4,
        });
        let credentials = StaticCredentialProvider::new(access_key_id, access_key_secret);
        OssSigningTransport {
            inner,
            signer: Signer::new(Context::new(), credentials, request_signer),
        }
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
            opendal::Error::new(
                opendal::ErrorKind::Unexpected,
                "cannot sign the OSS request",
            )
            .set_source(e)
        })?;
        self.inner.fetch(Request::from_parts(parts, body)).await
    }
}
