//! Files of concatenated BSON documents (a dump's `<collection>.bson`, an increment's
//! `oplog.bson`), read one document at a time with every length prefix checked.

use std::io::Read;
use std::path::{Path, PathBuf};

use mongodb::bson::RawDocumentBuf;

use crate::error::{Error, ErrorKind, Result};

/// Reads concatenated BSON documents from a stream, checking each length prefix.
pub struct BsonReader<R> {
    inner: R,
    path: PathBuf,
    offset: u64,
}

impl<R: Read> BsonReader<R> {
    pub fn new(inner: R, path: &Path) -> Self {
        BsonReader {
            inner,
            path: path.to_path_buf(),
            offset: 0,
        }
    }

    /// The next document, `None` at a clean end of file.
    pub fn next_document(&mut self) -> Result<Option<RawDocumentBuf>> {
        let mut len_bytes = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            let n = self
                .inner
                .read(&mut len_bytes[got..])
                .map_err(|e| Error::io("read", &self.path, e))?;
            if n == 0 {
                return if got == 0 {
                    Ok(None)
                } else {
                    Err(self.corrupt("truncated length"))
                };
            }
            got += n;
        }
        let len = i32::from_le_bytes(len_bytes);
        if !(5..=(48 << 20)).contains(&len) {
            return Err(self.corrupt(&format!("invalid document length {len}")));
        }
        let mut bytes = vec![0u8; len as usize];
        bytes[..4].copy_from_slice(&len_bytes);
        self.inner
            .read_exact(&mut bytes[4..])
            .map_err(|_| self.corrupt("truncated document"))?;
        let doc = RawDocumentBuf::from_bytes(bytes).map_err(|e| self.corrupt(&e.to_string()))?;
        self.offset += len as u64;
        Ok(Some(doc))
    }

    /// Documents up to about `max_bytes` (at least one); empty at the end.
    pub fn next_batch(&mut self, max_bytes: usize) -> Result<Vec<RawDocumentBuf>> {
        let mut batch = Vec::new();
        let mut size = 0;
        while size < max_bytes {
            match self.next_document()? {
                Some(d) => {
                    size += d.as_bytes().len();
                    batch.push(d);
                }
                None => break,
            }
        }
        Ok(batch)
    }

    fn corrupt(&self, why: &str) -> Error {
        Error::new(
            ErrorKind::Archive,
            format!(
                "{} is not a valid BSON dump at byte {}: {why}",
                self.path.display(),
                self.offset
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;

    #[test]
    fn bson_reader_splits_and_rejects_garbage() {
        let a = mongodb::bson::to_vec(&doc! {"_id": 1}).unwrap();
        let b = mongodb::bson::to_vec(&doc! {"_id": 2, "x": "y"}).unwrap();
        let data = [a.clone(), b.clone()].concat();
        let mut r = BsonReader::new(&data[..], Path::new("t.bson"));
        assert_eq!(r.next_batch(1).unwrap().len(), 1);
        assert_eq!(r.next_batch(1 << 20).unwrap()[0].as_bytes(), &b[..]);
        assert!(r.next_document().unwrap().is_none());
        let mut bad = BsonReader::new(&data[..7], Path::new("t.bson"));
        assert!(bad
            .next_document()
            .unwrap_err()
            .to_string()
            .contains("truncated"));
    }
}
