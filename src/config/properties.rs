//! The `config.properties` reader (COMPAT §1): `key = value` lines, taken literally.
//!
//! Kept from the old reader: split at `=`, trim both sides, backslashes are ordinary characters.
//! Fixed: a value keeps everything after the first `=` (more `=` and `#` included); only a line whose
//! first non-blank character is `#` is a comment; CRLF endings and a UTF-8 BOM are accepted.
//! Deliberately not Java-properties semantics: no escapes, no line continuations.

/// One `key = value` line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number, for error messages.
    pub line: usize,
    pub key: String,
    pub value: String,
}

/// A line that is neither blank, a comment nor `key = value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub line: usize,
    pub text: String,
}

/// Splits the text of a properties file into entries, in file order (a later duplicate wins when
/// the caller folds them, as the old dict-based reader did).
pub fn parse(text: &str) -> (Vec<Entry>, Vec<Ignored>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut entries = Vec::new();
    let mut ignored = Vec::new();
    for (idx, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match trimmed.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => entries.push(Entry {
                line: idx + 1,
                key: key.trim().to_string(),
                value: value.trim().to_string(),
            }),
            _ => ignored.push(Ignored {
                line: idx + 1,
                text: trimmed.to_string(),
            }),
        }
    }
    (entries, ignored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Vec<(String, String)> {
        parse(text)
            .0
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect()
    }

    #[test]
    fn values_keep_equals_and_hash() {
        assert_eq!(
            kv("db_passwd = p#ss=w0rd!\n"),
            vec![("db_passwd".into(), "p#ss=w0rd!".into())]
        );
    }

    #[test]
    fn comments_bom_crlf_and_backslashes() {
        let text = "\u{feff}## header\r\n  # indented comment = x\r\npath= H:\\pythoncode\\temp\\back\\ \r\n\r\nnoequals\r\n";
        let (entries, ignored) = parse(text);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].key, "path");
        assert_eq!(entries[0].value, "H:\\pythoncode\\temp\\back\\");
        assert_eq!(entries[0].line, 3);
        assert_eq!(
            ignored,
            vec![Ignored {
                line: 5,
                text: "noequals".into()
            }]
        );
    }

    #[test]
    fn empty_value_and_leading_equals() {
        let (entries, ignored) = parse("db_user=\n=value\n");
        assert_eq!(entries[0].value, "");
        assert_eq!(ignored.len(), 1);
    }
}
