//! Where archives are stored: OSS from `endpoint` + `bucket` (the old behaviour), or the bucket
//! named by `storage_url` (`file:///abs/dir`, `s3://bucket?endpoint=…&region=…`,
//! `oss://bucket?endpoint=…`). Resolves the OSS signing region. Pure: no network.

use std::path::PathBuf;

use super::{Secret, Settings};
use crate::error::{Error, Result};

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

/// A resolved storage location with what is needed to reach it.
#[derive(Debug, Clone)]
pub enum StorageTarget {
    Oss {
        endpoint: Endpoint,
        bucket: String,
        region: Option<String>,
        signature: SignatureVersion,
        access_key_id: String,
        access_key_secret: Secret,
    },
    S3 {
        bucket: String,
        endpoint: Option<String>,
        region: String,
        access_key_id: String,
        access_key_secret: Secret,
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

/// Resolves the target of `settings`; `bad(key, reason)` phrases an error about a config key.
pub(super) fn resolve(s: &Settings, bad: &dyn Fn(&str, &str) -> Error) -> Result<StorageTarget> {
    let Some(url_text) = &s.storage_url else {
        return oss_target(s, &s.bucket, &s.endpoint, bad);
    };
    let url = url::Url::parse(url_text).map_err(|_| {
        bad(
            "storage_url",
            "is not a storage URL (file:///abs/dir, s3://bucket?endpoint=…, oss://bucket)",
        )
    })?;
    let query = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    match url.scheme() {
        "file" => {
            if url
                .host_str()
                .is_some_and(|h| !h.is_empty() && h != "localhost")
            {
                return Err(bad(
                    "storage_url",
                    "must be file:///absolute/dir (three slashes)",
                ));
            }
            let root = url
                .to_file_path()
                .map_err(|_| bad("storage_url", "must name an absolute directory"))?;
            Ok(StorageTarget::Folder { root })
        }
        "s3" => {
            let bucket = url.host_str().unwrap_or("").to_string();
            if bucket.is_empty() {
                return Err(bad("storage_url", "names no bucket (s3://bucket?…)"));
            }
            let endpoint = query("endpoint");
            if let Some(e) = &endpoint {
                Endpoint::parse(e).map_err(|why| bad("storage_url", &format!("endpoint {why}")))?;
            }
            Ok(StorageTarget::S3 {
                bucket,
                endpoint,
                region: query("region").unwrap_or_else(|| "us-east-1".into()),
                access_key_id: s.access_key_id.clone(),
                access_key_secret: s.access_key_secret.clone(),
            })
        }
        "oss" => {
            let bucket = url.host_str().unwrap_or("").to_string();
            let endpoint = query("endpoint").unwrap_or_else(|| s.endpoint.clone());
            oss_target(s, &bucket, &endpoint, bad)
        }
        _ => Err(bad(
            "storage_url",
            "has an unknown scheme (use file://, s3:// or oss://)",
        )),
    }
}

fn oss_target(
    s: &Settings,
    bucket: &str,
    endpoint_text: &str,
    bad: &dyn Fn(&str, &str) -> Error,
) -> Result<StorageTarget> {
    let valid_bucket = bucket.len() >= 3
        && bucket.len() <= 63
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid_bucket {
        return Err(bad(
            "bucket",
            "is not an OSS bucket name (3-63 lowercase letters, digits, '-')",
        ));
    }
    let endpoint = Endpoint::parse(endpoint_text).map_err(|why| bad("endpoint", &why))?;
    if endpoint.host.parse::<std::net::IpAddr>().is_ok() || endpoint.host.starts_with('[') {
        // Virtual-hosted addressing puts the bucket in the host name.
        return Err(bad(
            "endpoint",
            "is an IP address; OSS needs a host name (bucket.host)",
        ));
    }
    if s.access_key_id.is_empty() {
        return Err(bad("accessKeyId", "is required when is_upload_to_oss=1"));
    }
    if s.access_key_secret.is_empty() {
        return Err(bad(
            "accessKeySecret",
            "is required when is_upload_to_oss=1 (or set MONGO_OSS_ACCESS_KEY_SECRET)",
        ));
    }
    let region = s
        .oss_region
        .clone()
        .or_else(|| derive_oss_region(&endpoint.host));
    if region.is_none() && s.oss_signature_version == SignatureVersion::V4 {
        return Err(bad(
            "endpoint",
            "names no OSS region; set oss_region (or oss_signature_version=1)",
        ));
    }
    Ok(StorageTarget::Oss {
        endpoint,
        bucket: bucket.to_string(),
        region,
        signature: s.oss_signature_version,
        access_key_id: s.access_key_id.clone(),
        access_key_secret: s.access_key_secret.clone(),
    })
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
