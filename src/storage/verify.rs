//! Upload verification: the digest of the local file, computed while it is read for upload, and
//! the comparison with what the bucket reports. CRC-64/ECMA (CRC-64/XZ, what OSS calls
//! crc64ecma) is the check everywhere; S3 reports no CRC64, so there the ETag is compared
//! (MD5, or MD5 of part MD5s for multipart uploads).

use md5::{Digest, Md5};

use super::ObjectInfo;
use crate::error::{Error, ErrorKind, Result};

/// Size, CRC64 and per-part MD5s of a local file, fed chunk by chunk (one chunk = one upload part).
#[derive(Default)]
pub struct LocalDigest {
    pub size: u64,
    crc: Crc64,
    part_md5s: Vec<[u8; 16]>,
}

impl LocalDigest {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next part of the file.
    pub fn update_part(&mut self, part: &[u8]) {
        self.size += part.len() as u64;
        self.crc.update(part);
        self.part_md5s.push(Md5::digest(part).into());
    }

    pub fn crc64(&self) -> u64 {
        self.crc.value()
    }

    /// The ETag S3 gives an object uploaded in these parts.
    pub fn s3_etag(&self) -> String {
        match self.part_md5s.as_slice() {
            [] => hex(&Md5::digest(b"")),
            [one] => hex(one),
            parts => {
                let mut all = Md5::new();
                for p in parts {
                    all.update(p);
                }
                format!("{}-{}", hex(&all.finalize()), parts.len())
            }
        }
    }

    /// Compares with the bucket's view. `readback_crc` is the CRC64 of the stored object read back,
    /// for backends that report neither CRC64 nor a usable ETag.
    pub fn check(&self, remote: &ObjectInfo, readback_crc: Option<u64>, what: &str) -> Result<()> {
        let mismatch = |detail: String| {
            Error::new(
                ErrorKind::Integrity,
                format!("uploaded object {what} does not match the local file: {detail}; the local file is kept"),
            )
        };
        if remote.size != self.size {
            return Err(mismatch(format!(
                "size {} in the bucket, {} here",
                remote.size, self.size
            )));
        }
        if let Some(crc) = remote.crc64.or(readback_crc) {
            if crc != self.crc64() {
                return Err(mismatch(format!(
                    "CRC64 {crc} in the bucket, {} here",
                    self.crc64()
                )));
            }
            return Ok(());
        }
        match remote.etag.as_deref().map(|e| e.trim_matches('"')) {
            Some(etag) if is_md5_etag(etag) => {
                let expected = self.s3_etag();
                if !etag.eq_ignore_ascii_case(&expected) {
                    return Err(mismatch(format!(
                        "ETag {etag} in the bucket, {expected} here"
                    )));
                }
                Ok(())
            }
            _ => Err(Error::new(
                ErrorKind::Integrity,
                format!("cannot verify uploaded object {what}: the bucket reports no checksum"),
            )),
        }
    }
}

fn is_md5_etag(etag: &str) -> bool {
    let (hash, parts) = match etag.split_once('-') {
        Some((h, n)) => (h, n.parse::<u32>().is_ok()),
        None => (etag, true),
    };
    parts && hash.len() == 32 && hash.chars().all(|c| c.is_ascii_hexdigit())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// CRC-64/ECMA of a local file, read through once.
pub fn file_crc64(path: &std::path::Path) -> Result<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut crc = Crc64::default();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            return Ok(crc.value());
        }
        crc.update(&buf[..n]);
    }
}

/// CRC-64/ECMA as OSS computes it (crc64fast: SIMD carry-less multiply where the CPU has it).
#[derive(Default)]
pub struct Crc64(crc64fast::Digest);

impl Crc64 {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }
    pub fn value(&self) -> u64 {
        self.0.sum64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_matches_the_catalogue_check_value() {
        let mut c = Crc64::default();
        c.update(b"123456789");
        assert_eq!(c.value(), 0x995d_c9bb_df19_39fa);
    }

    #[test]
    fn s3_etags() {
        let mut d = LocalDigest::new();
        d.update_part(b"hello");
        assert_eq!(d.s3_etag(), "5d41402abc4b2a76b9719d911017c592");
        d.update_part(b"world");
        assert!(d.s3_etag().ends_with("-2"));
    }

    #[test]
    fn size_and_crc_mismatch_are_integrity_errors() {
        let mut d = LocalDigest::new();
        d.update_part(b"abc");
        let remote = ObjectInfo {
            key: "k".into(),
            size: 3,
            crc64: Some(d.crc64()),
            etag: None,
            last_modified: None,
        };
        assert!(d.check(&remote, None, "k").is_ok());
        let wrong = ObjectInfo {
            crc64: Some(1),
            ..remote.clone()
        };
        assert_eq!(
            d.check(&wrong, None, "k").unwrap_err().kind(),
            ErrorKind::Integrity
        );
        let short = ObjectInfo { size: 2, ..remote };
        assert!(d
            .check(&short, None, "k")
            .unwrap_err()
            .to_string()
            .contains("size 2"));
    }
}
