//! The one S3 request OpenDAL does not make for us: GetObjectLockConfiguration (the bucket's
//! default Object Lock retention), signed with reqsign's SigV4 and sent over the same HTTP client.

use http::Request;
use opendal::{Buffer, HttpTransporter};
use reqsign_aws_v4::{Credential, RequestSigner, StaticCredentialProvider, EMPTY_STRING_SHA256};
use reqsign_core::{Context, Signer};

use super::{xml_text, Retention};

pub struct S3BucketApi {
    signer: Signer<Credential>,
    transport: HttpTransporter,
    /// `endpoint/bucket` (path-style, which every S3-compatible server answers).
    base: String,
}

impl S3BucketApi {
    pub fn new(
        transport: HttpTransporter,
        endpoint: &str,
        bucket: &str,
        region: &str,
        access_key_id: &str,
        access_key_secret: &str,
    ) -> Self {
        let credentials = StaticCredentialProvider::new(access_key_id, access_key_secret);
        S3BucketApi {
            signer: Signer::new(
                Context::new(),
                credentials,
                RequestSigner::new("s3", region),
            ),
            transport,
            base: format!("{}/{bucket}", endpoint.trim_end_matches('/')),
        }
    }

    /// The bucket's default retention, `None` when Object Lock is off or has no default rule.
    /// Errors are the reason, for the caller to phrase.
    pub async fn object_lock(&self) -> Result<Option<Retention>, String> {
        let req = Request::get(format!("{}?object-lock", self.base))
            .header("x-amz-content-sha256", EMPTY_STRING_SHA256)
            .body(Buffer::new())
            .map_err(|e| e.to_string())?;
        let (mut parts, body) = req.into_parts();
        self.signer
            .sign(&mut parts, None)
            .await
            .map_err(|e| e.to_string())?;
        let resp = self
            .transport
            .send(Request::from_parts(parts, body))
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let text = String::from_utf8_lossy(&resp.into_body().to_bytes()).into_owned();
        if status == http::StatusCode::NOT_FOUND && text.contains("ObjectLockConfigurationNotFound")
        {
            return Ok(None);
        }
        if !status.is_success() {
            let code = xml_text(&text, "Code").unwrap_or_default();
            return Err(format!("HTTP {status} {code}"));
        }
        if xml_text(&text, "ObjectLockEnabled").as_deref() != Some("Enabled") {
            return Ok(None);
        }
        let number = |tag: &str| xml_text(&text, tag).and_then(|v| v.parse::<u32>().ok());
        let days = number("Days").unwrap_or(0) + number("Years").unwrap_or(0) * 365;
        // Without a default rule, objects are only protected when written with a retention of
        // their own, which backups are not.
        Ok((days > 0).then_some(Retention { days, locked: true }))
    }
}
