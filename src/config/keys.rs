//! Every key config.properties understands, listed once: its name, its default as the README's
//! key table shows it, and what it means. The reader takes its defaults from here, warns about
//! keys not here, and a test holds the README's table to this list.

/// One config key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    pub name: &'static str,
    /// As the README shows it: a literal in backticks (`` `27017` ``), `empty` or `—` for an
    /// empty value, `derived` (computed when empty), or `required…`.
    pub default: &'static str,
    pub doc: &'static str,
}

impl KeySpec {
    /// The value a missing key takes, `None` when the key is required.
    pub fn default_value(&self) -> Option<&'static str> {
        let d = self.default;
        if d.starts_with("required") {
            None
        } else if let Some(literal) = d.strip_prefix('`').and_then(|x| x.strip_suffix('`')) {
            Some(literal)
        } else {
            Some("")
        }
    }
}

/// Every key, in the order `check-config` prints them.
pub const KEYS: &[KeySpec] = &[
    KeySpec {
        name: "endpoint",
        default: "—",
        doc: "OSS endpoint, e.g. `oss-cn-hangzhou.aliyuncs.com` (https); `http://host:port` only when written so",
    },
    KeySpec {
        name: "accessKeyId",
        default: "—",
        doc: "OSS credentials; the secret may come from `MONGO_OSS_ACCESS_KEY_SECRET`",
    },
    KeySpec {
        name: "accessKeySecret",
        default: "—",
        doc: "OSS credentials; the secret may come from `MONGO_OSS_ACCESS_KEY_SECRET`",
    },
    KeySpec {
        name: "bucket",
        default: "—",
        doc: "the bucket",
    },
    KeySpec {
        name: "db_host",
        default: "`localhost`",
        doc: "host name, or a whole `mongodb://` URI (replica set, TLS options)",
    },
    KeySpec {
        name: "db_port",
        default: "`27017`",
        doc: "port (ignored with a URI)",
    },
    KeySpec {
        name: "db_user",
        default: "empty",
        doc: "empty user = no authentication; auth database admin; the password may come from `MONGO_OSS_DB_PASSWD`",
    },
    KeySpec {
        name: "db_passwd",
        default: "empty",
        doc: "empty user = no authentication; auth database admin; the password may come from `MONGO_OSS_DB_PASSWD`",
    },
    KeySpec {
        name: "restore_db_user",
        default: "empty",
        doc: "the user restores and `verify --deep` write with (the backup user rarely may write); empty = `db_user`; the password may come from `MONGO_OSS_RESTORE_PASSWD`",
    },
    KeySpec {
        name: "restore_db_passwd",
        default: "empty",
        doc: "the user restores and `verify --deep` write with (the backup user rarely may write); empty = `db_user`; the password may come from `MONGO_OSS_RESTORE_PASSWD`",
    },
    KeySpec {
        name: "db_name",
        default: "empty",
        doc: "database to back up / restore; empty = every database but admin, local, config",
    },
    KeySpec {
        name: "db_backup_root_path",
        default: "required",
        doc: "local working directory: dumps, archives waiting for upload, state files",
    },
    KeySpec {
        name: "mongo_shell_path",
        default: "—",
        doc: "accepted for old files, unused (no MongoDB binaries needed)",
    },
    KeySpec {
        name: "is_inc_backup",
        default: "required",
        doc: "1 = incremental cycles, 0 = a full backup each run",
    },
    KeySpec {
        name: "full_backup_period",
        default: "required with `is_inc_backup=1`",
        doc: "days per cycle",
    },
    KeySpec {
        name: "is_upload_to_oss",
        default: "required",
        doc: "1 = upload and verify each archive, then delete the local copy; 0 = keep backups locally only (the bucket keys are then not required)",
    },
    KeySpec {
        name: "storage_url",
        default: "—",
        doc: "another bucket instead of endpoint+bucket: `file:///dir`, `s3://bucket?endpoint=…&region=…` (`&checksum=none`: no CRC32C header on uploads), `oss://bucket?endpoint=…`",
    },
    KeySpec {
        name: "oss_signature_version",
        default: "`4`",
        doc: "OSS request signing, 4 or 1",
    },
    KeySpec {
        name: "oss_region",
        default: "derived",
        doc: "region for V4 signing; derived from `oss-<region>[-internal].aliyuncs.com`",
    },
    KeySpec {
        name: "oss_credentials",
        default: "`access_key`",
        doc: "`access_key` (accessKeyId/accessKeySecret, plus `oss_security_token` for STS) or `ecs_ram_role`: the ECS instance's RAM role, no key on disk",
    },
    KeySpec {
        name: "oss_ecs_role",
        default: "empty",
        doc: "with `ecs_ram_role`: the role name; empty = the one the instance metadata names",
    },
    KeySpec {
        name: "oss_security_token",
        default: "empty",
        doc: "STS security token of a temporary AccessKey pair; may come from `MONGO_OSS_SECURITY_TOKEN`",
    },
    KeySpec {
        name: "oss_server_side_encryption",
        default: "empty",
        doc: "`AES256`, `KMS` or `SM4`: OSS encrypts every archive it stores; checked on each stored object",
    },
    KeySpec {
        name: "oss_kms_key_id",
        default: "empty",
        doc: "with `KMS`: the KMS key (empty = OSS's default key)",
    },
    KeySpec {
        name: "encrypt_recipients",
        default: "empty",
        doc: "age public keys (`age1…`, blank- or comma-separated) or a file of them: every archive and the manifests' collection lists are encrypted on this host before upload (`.age` after the suffix); restores need the identity (`--identity FILE` or `MONGO_OSS_AGE_IDENTITY`)",
    },
    KeySpec {
        name: "upload_concurrency",
        default: "`5`",
        doc: "multipart parts in flight",
    },
    KeySpec {
        name: "upload_part_size_mb",
        default: "`8`",
        doc: "MiB in one multipart part, 1 to 1024 (S3 wants at least 5); memory holds about `upload_concurrency` + 3 parts. An archive larger than 9,000 parts is uploaded once finished, in larger parts",
    },
    KeySpec {
        name: "local_copy",
        default: "`1`",
        doc: "1 = a full dump's archive is also written to `db_backup_root_path` while it streams to the bucket (a failed upload is retried from it); 0 = only the collections in flight are written locally, and a failed upload means the next run dumps again. Increments always keep their (small) archive until stored",
    },
    KeySpec {
        name: "storage_timeout_seconds",
        default: "`60`",
        doc: "a storage request stalled longer is abandoned and retried",
    },
    KeySpec {
        name: "compression",
        default: "`gzip`",
        doc: "`gzip` (what the old restore scripts and GNU tar read) or `zstd` (faster and smaller; archives `.tar.zst`, which the old restore scripts cannot read)",
    },
    KeySpec {
        name: "compression_level",
        default: "`6`",
        doc: "gzip level 0–9",
    },
    KeySpec {
        name: "zstd_level",
        default: "`3`",
        doc: "zstd level 1–19: at 3, ≈ 4× faster than gzip on every core for ≈ 5 % larger archives; from about 8 up, smaller than gzip -6 at gzip's speed or less (`bench/bench_archive.py --zstd-level N`)",
    },
    KeySpec {
        name: "compression_threads",
        default: "`0`",
        doc: "threads compressing an archive; 0 = every core",
    },
    KeySpec {
        name: "cycle_prefix",
        default: "`mongodb_cycle_backup_titan_`",
        doc: "name prefix of cycles",
    },
    KeySpec {
        name: "keep_cycles",
        default: "`0`",
        doc: "cycles kept in the bucket after each new cycle (0 = all); `prune` applies it on demand",
    },
    KeySpec {
        name: "create_bucket_folder",
        default: "`0`",
        doc: "1 = a backup creates a missing `file://` bucket folder (0700); 0 = a missing folder stops the run before the dump (an unmounted share must not fill the local disk), unless it lies inside `db_backup_root_path`",
    },
    KeySpec {
        name: "log_level",
        default: "`info`",
        doc: "error, warn, info or debug",
    },
    KeySpec {
        name: "metrics_file",
        default: "—",
        doc: "a Prometheus textfile (node_exporter's textfile collector, e.g. `/var/lib/node_exporter/mongo_oss_backup.prom`) rewritten atomically after every backup and verify: last success, run duration and bytes, cycle position, oplog window, pending archives, last verify; a relative path is the config file's neighbour",
    },
];

pub fn spec(name: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.name == name)
}

/// The known key an unknown one was probably meant to be: the same but for case, or within two
/// edits.
pub fn close_to(unknown: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|k| k.name)
        .find(|k| k.eq_ignore_ascii_case(unknown))
        .or_else(|| {
            KEYS.iter()
                .map(|k| {
                    (
                        k.name,
                        edits(&unknown.to_ascii_lowercase(), &k.name.to_ascii_lowercase()),
                    )
                })
                .filter(|(_, d)| *d <= 2)
                .min_by_key(|(_, d)| *d)
                .map(|(k, _)| k)
        })
}

/// Levenshtein distance.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's key table is this list: same keys, same defaults, same words.
    #[test]
    fn the_readme_table_is_this_list() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("| key | default | meaning |")
            .expect("README has the key table");
        let mut rows = Vec::new();
        for line in readme[start..].lines().skip(2) {
            if !line.starts_with('|') {
                break;
            }
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            assert_eq!(cells.len(), 3, "{line}");
            for name in cells[0].split(',').map(|n| n.trim().trim_matches('`')) {
                rows.push((name.to_string(), cells[1].to_string(), cells[2].to_string()));
            }
        }
        let listed: Vec<(String, String, String)> = KEYS
            .iter()
            .map(|k| (k.name.to_string(), k.default.to_string(), k.doc.to_string()))
            .collect();
        assert_eq!(rows, listed);
    }

    #[test]
    fn the_template_names_every_key() {
        let template = include_str!("../../config.properties");
        for k in KEYS {
            assert!(
                template
                    .lines()
                    .any(|l| l.split('=').next().map(str::trim) == Some(k.name)),
                "config.properties lacks {}",
                k.name
            );
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(close_to("IS_INC_BACKUP"), Some("is_inc_backup"));
        assert_eq!(close_to("db_pass"), Some("db_passwd"));
        assert_eq!(close_to("keep_cycle"), Some("keep_cycles"));
        assert_eq!(close_to("something_else"), None);
    }

    #[test]
    fn defaults() {
        assert_eq!(spec("db_port").unwrap().default_value(), Some("27017"));
        assert_eq!(spec("db_name").unwrap().default_value(), Some(""));
        assert_eq!(spec("is_inc_backup").unwrap().default_value(), None);
    }
}
