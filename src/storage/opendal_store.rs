//! `Storage` on Apache OpenDAL: one operator per target (services oss, s3, fs) with bounded
//! retries (5xx, resets, timeouts) and time limits, plus error wording that names the cause.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{HttpTransporter, OperationContext, Operator};
use opendal_http_transport_reqwest::ReqwestTransport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::causes::{first_line, service_said, unreachable_cause, LogRetries};
use super::folder;
use super::oss_api::OssBucketApi;
use super::oss_signing::OssSigningTransport;
use super::target::{OssCredentials, StorageTarget};
use super::verify::{Crc64, LocalDigest};
use super::{ByteProgress, ByteStream, ObjectInfo, PartStream, Retention, Storage, VerifiedUpload};
use crate::error::{Error, ErrorKind, Result};

/// Tunables of the storage layer.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// Multipart parts in flight at once.
    pub upload_concurrency: usize,
    /// Size of one multipart part; files up to this size go up in a single PUT.
    pub part_size: usize,
    /// Longest wait for a response or for the next bytes of one.
    pub io_timeout: Duration,
    /// Retries of one request after a temporary failure.
    pub retries: usize,
    /// A folder bucket that does not exist is created (0700) instead of refused. Off by default: a
    /// NAS share that is not mounted must not turn into a folder filling the local disk.
    pub create_missing_folder: bool,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            upload_concurrency: 5,
            part_size: 8 << 20,
            io_timeout: Duration::from_secs(60),
            retries: 4,
            create_missing_folder: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Oss,
    S3,
    Folder,
}

struct OpendalStorage {
    op: Operator,
    backend: Backend,
    describe: String,
    /// Endpoint URL for service-level messages ("cannot reach …").
    endpoint: String,
    bucket: String,
    opts: StorageOptions,
    /// For OSS: the requests OpenDAL does not make (CRC64 and encryption of an object, WORM).
    oss_api: Option<OssBucketApi>,
    /// For S3: the bucket request OpenDAL does not make (Object Lock).
    s3_api: Option<super::s3_api::S3BucketApi>,
    /// For OSS: the server-side encryption every stored archive must report.
    encryption: Option<crate::storage::target::OssEncryption>,
    /// What to check when the credentials are refused.
    credentials_hint: &'static str,
}

/// Opens the bucket described by `target`. Nothing is sent over the network yet.
pub fn open(target: &StorageTarget, opts: &StorageOptions) -> Result<Box<dyn Storage>> {
    // reqwest is built without a crypto provider of its own (see Cargo.toml): ring, once per process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(opts.io_timeout)
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| {
            Error::new(ErrorKind::Internal, "cannot build the HTTP client").with_source(e)
        })?;
    let plain = HttpTransporter::new(ReqwestTransport::new(client));
    let config_err = |e: opendal::Error| {
        Error::config(format!("cannot use {}: {}", target.describe(), e.message()))
    };
    let mut s3_api = None;
    let (op, backend, endpoint, bucket, oss_api) = match target {
        StorageTarget::Oss {
            endpoint,
            bucket,
            region,
            signature,
            credentials,
            encryption,
        } => {
            let mut builder = opendal::services::Oss::default()
                .bucket(bucket)
                .endpoint(&endpoint.url())
                .skip_signature();
            // Sent on every PutObject and InitiateMultipartUpload (OSS applies it to the parts).
            if let Some(e) = encryption {
                builder = builder.server_side_encryption(&e.algorithm);
                if let Some(key) = &e.kms_key_id {
                    builder = builder.server_side_encryption_key_id(key);
                }
            }
            let signing = HttpTransporter::new(OssSigningTransport::new(
                plain,
                bucket,
                region.as_deref(),
                *signature,
                credentials,
            ));
            let op = Operator::new(builder)
                .map_err(config_err)?
                .with_context(OperationContext::new().with_http_transport(signing.clone()));
            let port = endpoint.port.map(|p| format!(":{p}")).unwrap_or_default();
            let base = format!("{}://{bucket}.{}{port}", endpoint.scheme, endpoint.host);
            (
                op,
                Backend::Oss,
                endpoint.url(),
                bucket.clone(),
                Some(OssBucketApi::new(signing, base, opts.retries)),
            )
        }
        StorageTarget::S3 {
            bucket,
            endpoint,
            region,
            access_key_id,
            access_key_secret,
            crc32c,
        } => {
            let mut builder = opendal::services::S3::default()
                .bucket(bucket)
                .region(region)
                .disable_config_load()
                .disable_ec2_metadata();
            // S3 checks the CRC32C of every PutObject and part; a bucket with a default Object
            // Lock retention refuses uploads that carry neither this nor Content-MD5.
            if *crc32c {
                builder = builder.checksum_algorithm("crc32c");
            }
            if let Some(e) = endpoint {
                builder = builder.endpoint(e);
            }
            if !access_key_id.is_empty() {
                builder = builder
                    .access_key_id(access_key_id)
                    .secret_access_key(access_key_secret.expose());
            }
            let op = Operator::new(builder)
                .map_err(config_err)?
                .with_context(OperationContext::new().with_http_transport(plain.clone()));
            let ep = endpoint
                .clone()
                .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
            if !access_key_id.is_empty() {
                s3_api = Some(super::s3_api::S3BucketApi::new(
                    plain,
                    &ep,
                    bucket,
                    region,
                    access_key_id,
                    access_key_secret.expose(),
                ));
            }
            (op, Backend::S3, ep, bucket.clone(), None)
        }
        StorageTarget::Folder { root } => {
            folder::prepare_root(root, opts.create_missing_folder)?;
            let builder = opendal::services::Fs::default().root(&root.to_string_lossy());
            let op = Operator::new(builder).map_err(config_err)?;
            (
                op,
                Backend::Folder,
                root.display().to_string(),
                root.display().to_string(),
                None,
            )
        }
    };
    let op = op
        .layer(
            TimeoutLayer::new()
                .with_timeout(opts.io_timeout)
                .with_io_timeout(opts.io_timeout),
        )
        .layer(
            RetryLayer::new()
                .with_max_times(opts.retries)
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(5))
                .with_jitter()
                .with_notify(LogRetries),
        );
    Ok(Box::new(OpendalStorage {
        op,
        backend,
        describe: target.describe(),
        endpoint,
        bucket,
        opts: opts.clone(),
        oss_api,
        s3_api,
        encryption: match target {
            StorageTarget::Oss { encryption, .. } => encryption.clone(),
            _ => None,
        },
        credentials_hint: match target {
            StorageTarget::Oss {
                credentials: OssCredentials::EcsRamRole { .. },
                ..
            } => "check that the instance's RAM role may use the bucket",
            _ => "check accessKeyId and accessKeySecret",
        },
    }))
}

impl OpendalStorage {
    /// Turns an OpenDAL error into one line naming the cause.
    fn error(&self, action: &str, key: &str, e: opendal::Error) -> Error {
        let text = format!("{e:?}");
        let (kind, message) = if text.contains("NoSuchBucket") {
            (
                ErrorKind::StorageNotFound,
                format!(
                    "bucket \"{}\" does not exist at {}",
                    self.bucket, self.endpoint
                ),
            )
        } else if text.contains("cannot sign the OSS request") {
            (
                ErrorKind::StorageAuth,
                format!(
                    "no credentials for {}: {}",
                    self.describe,
                    first_line(e.message()).trim_start_matches("cannot sign the OSS request: ")
                ),
            )
        } else if text.contains("security token") {
            // STS: the server's own words (expired, invalid) say it best.
            let said = text
                .split("message: \"")
                .nth(1)
                .and_then(|m| m.split('"').next())
                .unwrap_or("the security token was refused");
            (
                ErrorKind::StorageAuth,
                format!("{} refused the credentials: {said}", self.describe),
            )
        } else if e.kind() == opendal::ErrorKind::PermissionDenied
            || text.contains("SignatureDoesNotMatch")
            || text.contains("InvalidAccessKeyId")
        {
            let code = [
                "SignatureDoesNotMatch",
                "InvalidAccessKeyId",
                "AccessDenied",
            ]
            .into_iter()
            .find(|c| text.contains(c))
            .unwrap_or("access denied");
            (
                ErrorKind::StorageAuth,
                format!(
                    "{} refused the credentials ({code}): {}",
                    self.describe, self.credentials_hint
                ),
            )
        } else if e.kind() == opendal::ErrorKind::NotFound {
            return Error::new(
                ErrorKind::StorageNotFound,
                format!("{key} not found in {}", self.describe),
            )
            .with_context("key", key)
            .with_source(e);
        } else if let Some(cause) = unreachable_cause(&text) {
            (
                ErrorKind::StorageUnreachable,
                format!(
                    "cannot reach the storage endpoint {}: {cause}",
                    self.endpoint
                ),
            )
        } else {
            return Error::new(
                ErrorKind::Storage,
                format!(
                    "cannot {action} {key} in {}: {}",
                    self.describe,
                    service_said(e.message()).unwrap_or_else(|| first_line(e.message()).into())
                ),
            )
            .with_context("key", key)
            .with_source(e);
        };
        Error::new(kind, message).with_source(e)
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let meta = match self.op.stat(key).await {
            Ok(m) => m,
            Err(e)
                if e.kind() == opendal::ErrorKind::NotFound
                    && !format!("{e:?}").contains("NoSuchBucket") =>
            {
                return Ok(None)
            }
            Err(e) => return Err(self.error("stat", key, e)),
        };
        Ok(Some(ObjectInfo {
            key: key.to_string(),
            size: meta.content_length(),
            crc64: None,
            etag: meta.etag().map(str::to_string),
            last_modified: meta.last_modified().map(|t| t.into_inner().as_second()),
        }))
    }

    /// Ends an upload that failed: a multipart upload is aborted, a folder's partial file removed.
    async fn abandon(&self, mut writer: opendal::Writer, target: &str) {
        let _ = writer.abort().await;
        if let Backend::Folder = self.backend {
            let _ = self.op.delete(target).await;
            folder::remove_empty_partial_folders(Path::new(&self.bucket), target);
        }
    }

    /// OSS's own CRC64 of an object, read from a signed HEAD.
    async fn oss_crc64(&self, key: &str) -> Result<Option<u64>> {
        Ok(self.oss_object_head(key).await?.0)
    }

    /// After an upload: OSS's CRC64, and the object must report the encryption asked for.
    async fn oss_crc64_encrypted(&self, key: &str) -> Result<Option<u64>> {
        let (crc, sse) = self.oss_object_head(key).await?;
        if let Some(want) = &self.encryption {
            if sse.as_deref() != Some(want.algorithm.as_str()) {
                return Err(Error::new(
                    ErrorKind::Integrity,
                    format!(
                        "{key} is stored {} in {}, not with server-side encryption {} as oss_server_side_encryption asks",
                        match &sse {
                            Some(other) => format!("with server-side encryption {other}"),
                            None => "unencrypted".to_string(),
                        },
                        self.describe,
                        want.algorithm
                    ),
                ));
            }
        }
        Ok(crc)
    }

    /// `x-oss-hash-crc64ecma` and `x-oss-server-side-encryption` of an object (OSS only).
    async fn oss_object_head(&self, key: &str) -> Result<(Option<u64>, Option<String>)> {
        let Some(api) = &self.oss_api else {
            return Ok((None, None));
        };
        api.object_head(key).await.map_err(|why| {
            Error::new(
                ErrorKind::Storage,
                format!("cannot read the CRC64 of {key} in {}: {why}", self.describe),
            )
        })
    }

    /// CRC64 of an object, read back through the storage (for backends without a checksum).
    async fn readback_crc64(&self, key: &str) -> Result<u64> {
        let reader = self
            .op
            .reader(key)
            .await
            .map_err(|e| self.error("read", key, e))?;
        let mut stream = reader
            .into_bytes_stream(..)
            .await
            .map_err(|e| self.error("read", key, e))?;
        let mut crc = Crc64::default();
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| Error::new(ErrorKind::Storage, format!("cannot read back {key}: {e}")))?
        {
            crc.update(&chunk);
        }
        Ok(crc.value())
    }
}

#[async_trait]
impl Storage for OpendalStorage {
    async fn put_file(
        &self,
        local: &Path,
        key: &str,
        progress: ByteProgress<'_>,
    ) -> Result<VerifiedUpload> {
        let file = tokio::fs::File::open(local)
            .await
            .map_err(|e| Error::io("open", local, e))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| Error::io("stat", local, e))?
            .len();
        // Stay under the 10,000-part limit of OSS and S3 whatever the size.
        let part_size = self.opts.part_size.max((size / 9_000) as usize + 1);
        let parts = futures::stream::try_unfold(file, move |mut file| async move {
            let mut part = Vec::with_capacity(part_size);
            (&mut file)
                .take(part_size as u64)
                .read_to_end(&mut part)
                .await
                .map_err(|e| Error::io("read", local, e))?;
            Ok((!part.is_empty()).then_some((part, file)))
        });
        self.put_parts(key, part_size, Box::pin(parts), progress)
            .await
    }

    fn stream_part_size(&self) -> Option<usize> {
        // Multipart uploads stay invisible until completed; a folder's object is written under
        // `PARTIAL_DIR` and renamed into place (`put_parts`).
        Some(self.opts.part_size)
    }

    async fn put_parts(
        &self,
        key: &str,
        part_size: usize,
        mut parts: PartStream<'_>,
        progress: ByteProgress<'_>,
    ) -> Result<VerifiedUpload> {
        // OpenDAL's folder writer writes in place: a folder object is written aside and renamed
        // into place once complete, so that a run killed half-way leaves nothing at the key.
        let target = match self.backend {
            Backend::Folder => {
                let bucket = Path::new(&self.bucket);
                folder::remove_stale_partials(bucket);
                let partial = folder::partial_key(key);
                folder::prepare_object(bucket, &partial)?;
                partial
            }
            Backend::Oss | Backend::S3 => key.to_string(),
        };
        let mut writer = self
            .op
            .writer_with(&target)
            .chunk(part_size)
            .concurrent(self.opts.upload_concurrency)
            .await
            .map_err(|e| self.error("upload", key, e))?;
        let mut digest = LocalDigest::new();
        loop {
            let part = match parts.try_next().await {
                Ok(Some(part)) => part,
                Ok(None) => break,
                Err(e) => {
                    self.abandon(writer, &target).await;
                    return Err(e);
                }
            };
            digest.update_part(&part);
            if let Err(e) = writer.write(part).await {
                self.abandon(writer, &target).await;
                return Err(self.error("upload", key, e));
            }
            progress(digest.size);
        }
        if let Err(e) = writer.close().await {
            self.abandon(writer, &target).await;
            return Err(self.error("upload", key, e));
        }
        if target != key {
            folder::prepare_parent(Path::new(&self.bucket), key)?;
            self.op
                .rename(&target, key)
                .await
                .map_err(|e| self.error("upload", key, e))?;
            folder::remove_empty_partial_folders(Path::new(&self.bucket), &target);
        }
        let remote = self.stat(key).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::Integrity,
                format!(
                    "{key} is missing from {} right after its upload",
                    self.describe
                ),
            )
        })?;
        let remote = ObjectInfo {
            crc64: self.oss_crc64_encrypted(key).await?,
            ..remote
        };
        let readback = match self.backend {
            Backend::Folder => Some(self.readback_crc64(key).await?),
            Backend::Oss | Backend::S3 => None,
        };
        digest.check(&remote, readback, key)?;
        Ok(VerifiedUpload {
            key: key.to_string(),
            size: digest.size,
            crc64: digest.crc64(),
        })
    }

    async fn get_file(&self, key: &str, local: &Path, progress: ByteProgress<'_>) -> Result<u64> {
        let (info, mut stream) = self.read_stream(key).await?;
        let expected_crc = info.crc64;
        if let Some(dir) = local.parent() {
            let mut builder = tokio::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            builder.mode(0o700); // a download is a backup: readable by its owner only
            builder
                .create(dir)
                .await
                .map_err(|e| Error::io("create directory", dir, e))?;
        }
        let partial = partial_path(local);
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        options.mode(0o600); // a backup holds the whole database
        let mut out = options
            .open(&partial)
            .await
            .map_err(|e| Error::io("create", &partial, e))?;
        let mut crc = Crc64::default();
        let mut written = 0u64;
        while let Some(chunk) = stream.try_next().await? {
            crc.update(&chunk);
            out.write_all(&chunk)
                .await
                .map_err(|e| Error::io("write", &partial, e))?;
            written += chunk.len() as u64;
            progress(written);
        }
        // tokio's File writes in the background: flush() is where a failed write (disk full)
        // comes back; sync_all() alone would not report it.
        out.flush()
            .await
            .map_err(|e| Error::io("write", &partial, e))?;
        out.sync_all()
            .await
            .map_err(|e| Error::io("fsync", &partial, e))?;
        drop(out);
        let bad = |detail: String| {
            let _ = std::fs::remove_file(&partial);
            Error::new(
                ErrorKind::Integrity,
                format!("download of {key} is corrupt: {detail}"),
            )
        };
        if written != info.size {
            return Err(bad(format!(
                "{written} bytes received, {} expected",
                info.size
            )));
        }
        if let Some(expected) = expected_crc.filter(|c| *c != crc.value()) {
            return Err(bad(format!(
                "CRC64 {} received, {expected} expected",
                crc.value()
            )));
        }
        tokio::fs::rename(&partial, local)
            .await
            .map_err(|e| Error::io("rename", &partial, e))?;
        Ok(crc.value())
    }

    async fn read_stream(&self, key: &str) -> Result<(ObjectInfo, ByteStream)> {
        let info = self.stat(key).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::StorageNotFound,
                format!("{key} not found in {}", self.describe),
            )
        })?;
        let crc64 = self.oss_crc64(key).await?;
        let reader = self
            .op
            .reader(key)
            .await
            .map_err(|e| self.error("download", key, e))?;
        let stream = reader
            .into_bytes_stream(..)
            .await
            .map_err(|e| self.error("download", key, e))?;
        let key = key.to_string();
        let stream = stream.map_err(move |e| {
            Error::new(
                ErrorKind::Storage,
                format!("download of {key} broke off: {e}"),
            )
        });
        Ok((ObjectInfo { crc64, ..info }, Box::pin(stream)))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let Some(info) = self.stat(key).await? else {
            return Ok(None);
        };
        // A folder has no stored checksum, but reading it back is local and cheap.
        let crc64 = match self.backend {
            Backend::Folder => Some(self.readback_crc64(key).await?),
            _ => self.oss_crc64(key).await?,
        };
        Ok(Some(ObjectInfo { crc64, ..info }))
    }

    async fn read(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.op.read(key).await {
            Ok(buf) => Ok(Some(buf.to_vec())),
            Err(e)
                if e.kind() == opendal::ErrorKind::NotFound
                    && !format!("{e:?}").contains("NoSuchBucket") =>
            {
                Ok(None)
            }
            Err(e) => Err(self.error("download", key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        // A folder lists directories, not name prefixes: list the prefix's directory and filter.
        let listed = match self.backend {
            Backend::Folder => match prefix.rfind('/') {
                Some(i) => &prefix[..=i],
                None => "/",
            },
            Backend::Oss | Backend::S3 => prefix,
        };
        if self.backend == Backend::Folder && !folder_exists(&self.op, listed).await {
            return Ok(Vec::new());
        }
        let mut lister = self
            .op
            .lister_with(listed)
            .recursive(true)
            .await
            .map_err(|e| self.error("list", prefix, e))?;
        let mut out = Vec::new();
        while let Some(entry) = lister
            .try_next()
            .await
            .map_err(|e| self.error("list", prefix, e))?
        {
            if entry.metadata().is_dir() {
                continue;
            }
            let key = entry.path().to_string();
            if !key.starts_with(prefix) {
                continue;
            }
            let meta = entry.metadata();
            let info = if self.backend == Backend::Folder {
                // The fs lister reports names only.
                match self.stat(&key).await? {
                    Some(i) => i,
                    None => continue,
                }
            } else {
                ObjectInfo {
                    key: key.clone(),
                    size: meta.content_length(),
                    crc64: None,
                    etag: meta.etag().map(str::to_string),
                    last_modified: meta.last_modified().map(|t| t.into_inner().as_second()),
                }
            };
            out.push(info);
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn check(&self) -> Result<()> {
        // A listing (not a HEAD) so that a missing bucket is told apart from a missing key.
        self.list("mongo-oss-backup-check/").await.map(|_| ())
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        self.op
            .delete_iter(keys.iter().map(String::as_str))
            .await
            .map_err(|e| self.error("delete", keys.first().map(String::as_str).unwrap_or(""), e))?;
        if self.backend == Backend::Folder {
            // A folder has real directories: the ones left empty go too (a pruned cycle leaves
            // nothing behind), never the bucket folder itself.
            let root = Path::new(&self.bucket);
            for key in keys {
                let mut dir = root.join(key);
                while dir.pop() && dir != root && dir.starts_with(root) {
                    if std::fs::remove_dir(&dir).is_err() {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    async fn retention(&self) -> Result<Option<Retention>> {
        if let Some(api) = &self.s3_api {
            return api.object_lock().await.map_err(|why| {
                Error::new(
                    ErrorKind::Storage,
                    format!(
                        "cannot read the Object Lock configuration of {}: {why}",
                        self.describe
                    ),
                )
            });
        }
        let Some(api) = &self.oss_api else {
            return Ok(None);
        };
        api.worm().await.map_err(|why| {
            Error::new(
                ErrorKind::Storage,
                format!(
                    "cannot read the retention policy (WORM) of {}: {why}",
                    self.describe
                ),
            )
        })
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

async fn folder_exists(op: &Operator, dir: &str) -> bool {
    op.exists(dir).await.unwrap_or(false)
}

fn partial_path(local: &Path) -> PathBuf {
    let mut name = local.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    local.with_file_name(name)
}
