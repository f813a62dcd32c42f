//! The storage keys of config.properties resolved into a `storage::StorageTarget`: OSS from
//! `endpoint` + `bucket` (the old behaviour), or the bucket named by `storage_url`
//! (`file:///abs/dir`, `s3://bucket?endpoint=…&region=…`, `oss://bucket?endpoint=…`), with the OSS
//! signing region derived from the endpoint. Pure: no network.

use super::Settings;
use crate::error::{Error, Result};
use crate::storage::target::{
    derive_oss_region, Endpoint, OssCredentials, SignatureVersion, StorageTarget,
};

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
            let crc32c = match query("checksum").as_deref() {
                None | Some("crc32c") => true,
                Some("none") => false,
                Some(other) => {
                    return Err(bad(
                        "storage_url",
                        &format!("checksum={other} is not crc32c or none"),
                    ))
                }
            };
            Ok(StorageTarget::S3 {
                bucket,
                endpoint,
                region: query("region").unwrap_or_else(|| "us-east-1".into()),
                access_key_id: s.access_key_id.clone(),
                access_key_secret: s.access_key_secret.clone(),
                crc32c,
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
    if bucket.is_empty() {
        return Err(bad(
            "bucket",
            "is empty: name the bucket the archives go to",
        ));
    }
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
    let credentials = oss_credentials(s, bad)?;
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
        credentials,
        encryption: s.oss_encryption.clone(),
    })
}

/// The AccessKey pair (with its STS token), or the instance's RAM role.
fn oss_credentials(s: &Settings, bad: &dyn Fn(&str, &str) -> Error) -> Result<OssCredentials> {
    if let Some(role) = &s.oss_ecs_ram_role {
        if !s.access_key_id.is_empty() {
            return Err(bad(
                "accessKeyId",
                "is set while oss_credentials=ecs_ram_role: the role's temporary credentials are used; leave it empty",
            ));
        }
        return Ok(OssCredentials::EcsRamRole {
            role: Some(role.clone()).filter(|r| !r.is_empty()),
        });
    }
    if s.access_key_id.is_empty() {
        return Err(bad(
            "accessKeyId",
            "is required when is_upload_to_oss=1 (or oss_credentials=ecs_ram_role on an ECS instance)",
        ));
    }
    if s.access_key_id == super::PLACEHOLDER_KEY_ID {
        return Err(bad(
            "accessKeyId",
            "is still the template's placeholder: write your AccessKey ID",
        ));
    }
    if s.access_key_secret.expose() == super::PLACEHOLDER_KEY_SECRET {
        return Err(bad(
            "accessKeySecret",
            "is still the template's placeholder: write your AccessKey secret (or set MONGO_OSS_ACCESS_KEY_SECRET)",
        ));
    }
    if s.access_key_secret.is_empty() {
        return Err(bad(
            "accessKeySecret",
            "is required when is_upload_to_oss=1 (or set MONGO_OSS_ACCESS_KEY_SECRET)",
        ));
    }
    Ok(OssCredentials::AccessKey {
        access_key_id: s.access_key_id.clone(),
        access_key_secret: s.access_key_secret.clone(),
        security_token: Some(s.oss_security_token.clone()).filter(|t| !t.is_empty()),
    })
}
