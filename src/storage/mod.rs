//! The bucket: our small `Storage` trait, its OpenDAL implementation (OSS, S3, a local folder) and
//! upload verification. Everything above this module sees keys and local files only; signing,
//! retries, multipart and error wording stay here.

mod causes;
mod folder;
mod opendal_store;
mod oss_api;
mod oss_signing;
mod s3_api;
pub mod target;
mod verify;

use std::path::Path;

use async_trait::async_trait;

pub use opendal_store::{open, StorageOptions};
pub use target::StorageTarget;
pub use verify::{file_crc64, Crc64, LocalDigest};

use crate::error::Result;

/// What the bucket says about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// CRC-64/ECMA of the content when the backend reports it (OSS `x-oss-hash-crc64ecma`).
    pub crc64: Option<u64>,
    pub etag: Option<String>,
    /// Seconds since the epoch, when known.
    pub last_modified: Option<i64>,
}

impl ObjectInfo {
    /// Whether the object holds `size` bytes with CRC64 `crc64` (as far as the bucket reports: S3
    /// gives no CRC64, so there the size alone).
    pub fn holds(&self, size: u64, crc64: u64) -> bool {
        self.size == size && self.crc64.is_none_or(|crc| crc == crc64)
    }
}

/// A bucket's retention policy (OSS WORM): no object can be deleted or overwritten until `days`
/// after it was last modified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Retention {
    pub days: u32,
    /// `Locked` for good, or still `InProgress` (protecting already, removable by the owner for
    /// its first day).
    pub locked: bool,
}

impl Retention {
    /// Until when (seconds since the epoch) an object last modified at `modified` is protected.
    pub fn protected_until(&self, modified: i64) -> i64 {
        modified + i64::from(self.days) * 86_400
    }
}

/// A stored object that has been checked against the local file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUpload {
    pub key: String,
    pub size: u64,
    pub crc64: u64,
}

/// The parts of an upload whose length is not known when it starts.
pub type PartStream<'a> = futures::stream::BoxStream<'a, Result<Vec<u8>>>;

/// The content of an object as it downloads, in chunks.
pub type ByteStream = futures::stream::BoxStream<'static, Result<bytes::Bytes>>;

/// Progress of one transfer, in bytes.
pub type ByteProgress<'a> = &'a (dyn Fn(u64) + Send + Sync);

/// The operations the engine needs from a bucket. Keys are relative to the bucket root, `/`
/// separated, without a leading slash.
#[async_trait]
pub trait Storage: Send + Sync {
    /// Uploads a local file (multipart above a threshold), then verifies size and CRC64 in the
    /// bucket. A mismatch is an `Integrity` error; the local file is never touched.
    async fn put_file(
        &self,
        local: &Path,
        key: &str,
        progress: ByteProgress<'_>,
    ) -> Result<VerifiedUpload>;

    /// Uploads what `parts` yields (each part but the last exactly `part_size` bytes) as one
    /// object, then verifies it as `put_file` does. The object appears only if the stream ends
    /// without an error: an error aborts the upload.
    async fn put_parts(
        &self,
        key: &str,
        part_size: usize,
        parts: PartStream<'_>,
        progress: ByteProgress<'_>,
    ) -> Result<VerifiedUpload>;

    /// The part size for `put_parts` of a stream whose length is not known yet, when the bucket
    /// keeps an unfinished upload out of sight (multipart, or a folder's write-aside-and-rename);
    /// `None` when a stream cut short could look like a stored object.
    fn stream_part_size(&self) -> Option<usize>;

    /// Downloads an object to a local file (streamed; written to a temp name, then renamed).
    /// Returns the CRC64 of what was written, checked against the bucket's when it reports one.
    async fn get_file(&self, key: &str, local: &Path, progress: ByteProgress<'_>) -> Result<u64>;

    /// Opens an object for a streamed read: what the bucket says of it (size; CRC64 where the
    /// bucket reports one, never computed here) and its content. Nothing checks the content
    /// against them: the reader does, once it has read it all.
    async fn read_stream(&self, key: &str) -> Result<(ObjectInfo, ByteStream)>;

    /// Metadata of one object, `None` when it does not exist. The CRC64 is the bucket's own (OSS),
    /// computed from the stored file (folder), or absent (S3).
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>>;

    /// The whole content of a small object (a manifest), `None` when it does not exist.
    async fn read(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Every object under `prefix`, recursively, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;

    /// Checks, before any work, that the bucket exists and accepts our credentials.
    async fn check(&self) -> Result<()>;

    /// Deletes objects; missing ones are not an error.
    async fn delete(&self, keys: &[String]) -> Result<()>;

    /// The bucket's retention policy, if it has one: OSS WORM, or S3 Object Lock's default
    /// retention (a folder has none).
    async fn retention(&self) -> Result<Option<Retention>> {
        Ok(None)
    }

    /// A description for messages, e.g. `oss://bucket at https://oss-cn-hangzhou.aliyuncs.com`.
    fn describe(&self) -> String;
}

/// The text of the first `<tag>…</tag>` of a small XML answer (the bucket requests of `oss_api`
/// and `s3_api`).
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..end].trim().to_string())
}
