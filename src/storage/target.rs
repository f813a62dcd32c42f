//! Where archives are stored: an OSS bucket at an endpoint (with its signing region and
//! credentials), an S3 bucket, or a local folder; the endpoint parser and the OSS region rule.
//! The config reader resolves its keys into this; the storage opens it.

use std::path::PathBuf;

use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    V1,
    V4,
}

impl SignatureVersion {
    pub fn number(self) -> u8 {
        match self {
            SignatureVersion::V1 => 1,
            SignatureVersion::V4 => 4,
        }
    }
}

/// An HTTP(S) endpoint: `host[:port]` with its scheme. No scheme written means https.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: String,
    /// Host name without the port.
    pub host: String,
    pub port: Option<u16>,
}

impl Endpoint {
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let text = text.trim().trim_end_matches('/');
        if text.is_empty() {
            return Err("is empty".into());
        }
        let with_scheme = if text.contains("://") {
            text.to_string()
        } else {
            format!("https://{text}")
        };
        let url =
            url::Url::parse(&with_scheme).map_err(|_| "is not a host name or URL".to_string())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be http:// or https://".into());
        }
        if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
            return Err("must be a bare host[:port], without path, query or user".into());
        }
        let host = url.host_str().ok_or("has no host")?.to_string();
        Ok(Endpoint {
            scheme: url.scheme().to_string(),
            host,
            port: url.port(),
        })
    }

    /// `scheme://host[:port]`
    pub fn url(&self) -> String {
        match self.port {
            Some(p) => format!("{}://{}:{p}", self.scheme, self.host),
            None => format!("{}://{}", self.scheme, self.host),
        }
    }
}

/// `oss-<region>[-internal].aliyuncs.com` → region; the legacy `oss.aliyuncs.com` → cn-hangzhou.
pub fn derive_oss_region(host: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    if host == "oss.aliyuncs.com" || host == "oss-internal.aliyuncs.com" {
        return Some("cn-hangzhou".into());
    }
    let name = host.strip_suffix(".aliyuncs.com")?.strip_prefix("oss-")?;
    let region = name.strip_suffix("-internal").unwrap_or(name);
    let valid = !region.is_empty()
        && !region.starts_with("accelerate")
        && region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    valid.then(|| region.to_string())
}

/// Where OSS requests take their credentials from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OssCredentials {
    /// An AccessKey pair; with an STS security token when the pair is temporary.
    AccessKey {
        access_key_id: String,
        access_key_secret: Secret,
        security_token: Option<Secret>,
    },
    /// The temporary credentials of the ECS instance's RAM role, from the instance metadata
    /// service (the role it names when `None`), fetched again before they expire.
    EcsRamRole { role: Option<String> },
}

/// OSS server-side encryption asked for on every write (`AES256`, `KMS` or `SM4`) and checked on
/// the stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OssEncryption {
    pub algorithm: String,
    pub kms_key_id: Option<String>,
}

/// A resolved storage location with what is needed to reach it.
#[derive(Debug, Clone)]
pub enum StorageTarget {
    Oss {
        endpoint: Endpoint,
        bucket: String,
        region: Option<String>,
        signature: SignatureVersion,
        credentials: OssCredentials,
        encryption: Option<OssEncryption>,
    },
    S3 {
        bucket: String,
        endpoint: Option<String>,
        region: String,
        access_key_id: String,
        access_key_secret: Secret,
        /// Send each upload's CRC32C (`x-amz-checksum-crc32c`) for S3 to check, as a bucket with
        /// Object Lock demands; `checksum=none` in the URL turns it off for services that refuse it.
        crc32c: bool,
    },
    Folder {
        root: PathBuf,
    },
}

impl StorageTarget {
    /// A short description for logs and errors, free of secrets.
    pub fn describe(&self) -> String {
        match self {
            StorageTarget::Oss {
                endpoint, bucket, ..
            } => format!("oss://{bucket} at {}", endpoint.url()),
            StorageTarget::S3 {
                bucket, endpoint, ..
            } => match endpoint {
                Some(e) => format!("s3://{bucket} at {e}"),
                None => format!("s3://{bucket}"),
            },
            StorageTarget::Folder { root } => format!("folder {}", root.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_from_endpoints() {
        assert_eq!(
            derive_oss_region("oss-cn-hangzhou.aliyuncs.com").as_deref(),
            Some("cn-hangzhou")
        );
        assert_eq!(
            derive_oss_region("oss-cn-beijing-internal.aliyuncs.com").as_deref(),
            Some("cn-beijing")
        );
        assert_eq!(
            derive_oss_region("oss.aliyuncs.com").as_deref(),
            Some("cn-hangzhou")
        );
        assert_eq!(derive_oss_region("oss-accelerate.aliyuncs.com"), None);
        assert_eq!(derive_oss_region("localhost"), None);
    }

    #[test]
    fn endpoints_default_to_https() {
        let e = Endpoint::parse("oss-cn-hangzhou.aliyuncs.com").unwrap();
        assert_eq!(e.url(), "https://oss-cn-hangzhou.aliyuncs.com");
        let e = Endpoint::parse("http://127.0.0.1:9000/").unwrap();
        assert_eq!(e.url(), "http://127.0.0.1:9000");
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("http://x/path").is_err());
    }
}
