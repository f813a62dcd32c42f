//! The OSS requests OpenDAL does not make for us, sent over the same signing transport: the HEAD
//! that reads an object's own CRC64 (`x-oss-hash-crc64ecma`, absent from OpenDAL's metadata) and
//! its server-side encryption, and GetBucketWorm (the bucket's retention policy).

use std::time::Duration;

use opendal::{Buffer, HttpTransporter};

use super::{xml_text, Retention};

pub struct OssBucketApi {
    transport: HttpTransporter,
    /// `scheme://bucket.host[:port]`
    base: String,
    retries: usize,
}

impl OssBucketApi {
    pub fn new(transport: HttpTransporter, base: String, retries: usize) -> Self {
        OssBucketApi {
            transport,
            base,
            retries,
        }
    }

    /// The CRC64 and server-side encryption OSS reports for `key`; retried on 5xx and transport
    /// errors. Errors are the reason, for the caller to phrase.
    pub async fn object_head(&self, key: &str) -> Result<(Option<u64>, Option<String>), String> {
        let url = format!("{}/{}", self.base, encode_key(key));
        let mut last = String::new();
        for attempt in 0..=self.retries {
            let req = http::Request::head(&url)
                .body(Buffer::new())
                .map_err(|e| e.to_string())?;
            match self.transport.send(req).await {
                Ok(resp) if resp.status().is_server_error() => {
                    last = format!("HTTP {}", resp.status());
                }
                Ok(resp) => {
                    let header = |name: &str| {
                        resp.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string)
                    };
                    return Ok((
                        header("x-oss-hash-crc64ecma").and_then(|v| v.parse::<u64>().ok()),
                        header("x-oss-server-side-encryption"),
                    ));
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200 << attempt.min(4))).await;
        }
        Err(last)
    }

    /// GetBucketWorm: the bucket's retention policy, `None` when it has none
    /// (404 NoSuchWORMConfiguration).
    pub async fn worm(&self) -> Result<Option<Retention>, String> {
        let req = http::Request::get(format!("{}/?worm", self.base))
            .body(Buffer::new())
            .map_err(|e| e.to_string())?;
        let resp = self
            .transport
            .send(req)
            .await
            .map_err(|e| e.message().lines().next().unwrap_or_default().to_string())?;
        let status = resp.status();
        let body = String::from_utf8_lossy(&resp.into_body().to_bytes()).into_owned();
        if status == http::StatusCode::NOT_FOUND && body.contains("NoSuchWORMConfiguration") {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(format!(
                "HTTP {status} {}",
                xml_text(&body, "Code").unwrap_or_default()
            ));
        }
        let days = xml_text(&body, "RetentionPeriodInDays")
            .and_then(|d| d.parse::<u32>().ok())
            .ok_or("no RetentionPeriodInDays in the answer")?;
        Ok(Some(Retention {
            days,
            locked: xml_text(&body, "State").as_deref() == Some("Locked"),
        }))
    }
}

fn encode_key(key: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(key, KEEP).to_string()
}
