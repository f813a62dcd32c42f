//! Client-side encryption, opt-in (`encrypt_recipients`): archives and the data section of
//! manifests are sealed with the age format (the `age` crate, X25519 recipients `age1…`) before
//! they leave the host, so the host that makes backups holds only public keys and cannot read
//! them back. The restore host holds the identity (`AGE-SECRET-KEY-1…`), given by `--identity
//! FILE` or `MONGO_OSS_AGE_IDENTITY`. Sealed archives are recognised by age's header, whatever
//! they are named, and stay streamed: age encrypts in 64 KiB chunks as the bytes pass.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, ErrorKind, Result};

/// The first bytes of every age file.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";
/// Appended to the codec's suffix: `.tar.gz.age`.
pub const SUFFIX: &str = ".age";
/// The environment variable that may hold the identity (a file name, or the key itself).
pub const ENV_IDENTITY: &str = "MONGO_OSS_AGE_IDENTITY";

/// Whether `head` (the first bytes of a file) starts an age file.
pub fn is_sealed(head: &[u8]) -> bool {
    head.starts_with(AGE_MAGIC)
}

/// The public keys archives are sealed for.
#[derive(Clone)]
pub struct Recipients {
    keys: Vec<age::x25519::Recipient>,
}

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| k.to_string()))
            .finish()
    }
}

impl Recipients {
    /// `encrypt_recipients`: `age1…` keys separated by blanks or commas, or the name of a file
    /// holding them one per line (`#` comments allowed, as age's own recipients files).
    pub fn parse(value: &str) -> std::result::Result<Self, String> {
        let value = value.trim();
        let text = if value.starts_with("age1") {
            value.replace(',', " ")
        } else {
            let path = Path::new(value);
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the recipients file {value}: {e}"))?
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let keys = text
            .split_whitespace()
            .map(|k| {
                age::x25519::Recipient::from_str(k).map_err(|_| {
                    format!("{k:.12}… is not an age public key (age1…; `age-keygen` prints one)")
                })
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err("names no age public key".into());
        }
        Ok(Recipients { keys })
    }

    /// The keys as written (`age1…`), for check-config and the logs.
    pub fn describe(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.to_string()).collect()
    }

    /// A writer that seals what goes through it into `out`; `finish` writes the last chunk.
    pub fn seal<W: Write>(&self, out: W) -> std::io::Result<age::stream::StreamWriter<W>> {
        let encryptor =
            age::Encryptor::with_recipients(self.keys.iter().map(|k| k as &dyn age::Recipient))
                .map_err(std::io::Error::other)?;
        encryptor.wrap_output(out)
    }

    /// `plain` sealed, as bytes.
    pub fn seal_bytes(&self, plain: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut w = self.seal(Vec::with_capacity(plain.len() + 256))?;
        w.write_all(plain)?;
        w.finish()
    }
}

/// A file (or any writer) written plain, or sealed on its way in.
pub enum Output<W: Write = std::fs::File> {
    Plain(W),
    Sealed(age::stream::StreamWriter<W>),
}

impl<W: Write> Output<W> {
    pub fn new(out: W, recipients: Option<&Recipients>) -> std::io::Result<Self> {
        Ok(match recipients {
            None => Output::Plain(out),
            Some(r) => Output::Sealed(r.seal(out)?),
        })
    }

    /// Writes age's last chunk (when sealed) and gives the writer back, to fsync it.
    pub fn finish(self) -> std::io::Result<W> {
        match self {
            Output::Plain(f) => Ok(f),
            Output::Sealed(w) => w.finish(),
        }
    }
}

impl<W: Write> Write for Output<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Plain(f) => f.write(buf),
            Output::Sealed(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Plain(f) => f.flush(),
            Output::Sealed(w) => w.flush(),
        }
    }
}

/// The private key(s) that open sealed archives.
pub struct Identity {
    keys: Vec<age::x25519::Identity>,
    /// Where it came from (a file name, or "MONGO_OSS_AGE_IDENTITY"), for messages.
    origin: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.origin) // never the key
    }
}

impl Identity {
    /// `spec` is a file of `AGE-SECRET-KEY-1…` lines (as `age-keygen -o` writes), or one key
    /// itself (from the environment, never from argv).
    pub fn load(spec: &str, origin: &str) -> Result<Self> {
        let spec = spec.trim();
        let (text, origin) = if spec.starts_with("AGE-SECRET-KEY-") {
            (spec.to_string(), origin.to_string())
        } else {
            let text = std::fs::read_to_string(spec).map_err(|e| {
                Error::config(format!("cannot read the age identity file {spec}: {e}"))
            })?;
            (text, spec.to_string())
        };
        let keys = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                age::x25519::Identity::from_str(l).map_err(|_| {
                    Error::config(format!(
                        "{origin} holds a line that is not an age secret key (AGE-SECRET-KEY-1…)"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if keys.is_empty() {
            return Err(Error::config(format!("{origin} holds no age secret key")));
        }
        Ok(Identity { keys, origin })
    }

    /// The identity in file `path` (`--identity`).
    pub fn from_file(path: &Path) -> Result<Self> {
        let spec = path.display().to_string();
        Identity::load(&spec, &spec)
    }

    /// The identity from `MONGO_OSS_AGE_IDENTITY`, if set.
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var(ENV_IDENTITY) {
            Ok(v) if !v.trim().is_empty() => Identity::load(&v, ENV_IDENTITY).map(Some),
            _ => Ok(None),
        }
    }

    /// The public keys of this identity.
    pub fn public_keys(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| k.to_public().to_string())
            .collect()
    }

    /// A reader of the plaintext of sealed `input`; `what` names it in errors.
    pub fn open<R: Read>(&self, input: R, what: &str) -> Result<age::stream::StreamReader<R>> {
        let decryptor = age::Decryptor::new(input).map_err(|e| self.refused(what, e))?;
        decryptor
            .decrypt(self.keys.iter().map(|k| k as &dyn age::Identity))
            .map_err(|e| self.refused(what, e))
    }

    /// The plaintext of sealed `bytes`.
    pub fn open_bytes(&self, bytes: &[u8], what: &str) -> Result<Vec<u8>> {
        let mut plain = Vec::new();
        self.open(bytes, what)?
            .read_to_end(&mut plain)
            .map_err(|e| Error::new(ErrorKind::Integrity, format!("{what}: {e}")))?;
        Ok(plain)
    }

    fn refused(&self, what: &str, e: age::DecryptError) -> Error {
        match e {
            age::DecryptError::NoMatchingKeys => Error::new(
                ErrorKind::Encryption,
                format!(
                    "{what} is encrypted for other keys: the identity in {} ({}) is not one of its recipients",
                    self.origin,
                    self.public_keys().join(", ")
                ),
            ),
            other => Error::new(
                ErrorKind::Integrity,
                format!("{what} is not a readable age file: {other}"),
            ),
        }
    }
}

/// Makes a new identity in `path` (created 0600, never overwritten) and returns its public key.
pub fn generate_identity_file(path: &Path) -> Result<String> {
    use age::secrecy::ExposeSecret;
    let key = age::x25519::Identity::generate();
    let public = key.to_public().to_string();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Error::config(format!(
            "{} exists already: an identity is never overwritten (its backups would be lost)",
            path.display()
        )),
        _ => Error::io("create", path, e),
    })?;
    let text = format!(
        "# created by mongo-oss-backup keygen: {}\n# public key: {public}\n{}\n",
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S"),
        key.to_string().expose_secret()
    );
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("write", path, e))?;
    Ok(public)
}

/// The error for a sealed file met without an identity.
pub fn identity_needed(what: &str) -> Error {
    Error::new(
        ErrorKind::Encryption,
        format!(
            "{what} is encrypted (age): give the identity with --identity FILE or {ENV_IDENTITY}"
        ),
    )
}

/// A reader of `input` that is opened with `identity` when it is sealed and passed through
/// when it is not.
pub fn reader<R: Read + Send + 'static>(
    input: R,
    identity: Option<&Identity>,
    what: &str,
) -> Result<Box<dyn Read + Send>> {
    let mut input = BufReader::with_capacity(1 << 16, input);
    let head = input
        .fill_buf()
        .map_err(|e| Error::new(ErrorKind::Archive, format!("cannot read {what}: {e}")))?;
    if !is_sealed(head) {
        return Ok(Box::new(input));
    }
    match identity {
        Some(id) => Ok(Box::new(id.open(input, what)?)),
        None => Err(identity_needed(what)),
    }
}

/// A fresh key pair, for tests.
#[cfg(test)]
pub fn test_pair() -> (Recipients, Identity) {
    use age::secrecy::ExposeSecret;
    let key = age::x25519::Identity::generate();
    let recipients = Recipients::parse(&key.to_public().to_string()).unwrap();
    let identity = Identity::load(key.to_string().expose_secret(), "test").unwrap();
    (recipients, identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Recipients, Identity) {
        test_pair()
    }

    #[test]
    fn sealed_bytes_open_only_with_the_identity() {
        let (recipients, identity) = pair();
        let sealed = recipients.seal_bytes(b"secret document").unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            identity.open_bytes(&sealed, "x").unwrap(),
            b"secret document"
        );
        let (_, other) = pair();
        let err = other.open_bytes(&sealed, "x").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Encryption);
        assert!(
            err.to_string().contains("encrypted for other keys"),
            "{err}"
        );
        let err = match reader(std::io::Cursor::new(sealed), None, "x") {
            Err(e) => e,
            Ok(_) => panic!("a sealed file opened without an identity"),
        };
        assert!(err.to_string().contains("--identity"), "{err}");
    }

    #[test]
    fn recipients_parse_lists_and_files_and_refuse_garbage() {
        let (a, _) = pair();
        let (b, _) = pair();
        let (ka, kb) = (a.describe()[0].clone(), b.describe()[0].clone());
        assert_eq!(
            Recipients::parse(&format!("{ka}, {kb}"))
                .unwrap()
                .describe()
                .len(),
            2
        );
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("recipients.txt");
        std::fs::write(&file, format!("# ops team\n{ka}\n\n{kb}\n")).unwrap();
        let both = Recipients::parse(file.to_str().unwrap()).unwrap();
        assert_eq!(both.describe(), vec![ka, kb]);
        assert!(Recipients::parse("age1notakey").is_err());
        assert!(Recipients::parse(tmp.path().join("none").to_str().unwrap()).is_err());
    }
}
