//! File names of collections in a dump, exactly as mongodump writes them (mongodump/prepare.go
//! `outputPath`): the collection name query-escaped like Go's `url.QueryEscape`, and names whose
//! escaped form is longer than 238 bytes cut to 208 bytes + `%24` + base64url(SHA-1(name)), so that
//! `<name>.metadata.json.gz` still fits in 255 bytes. The full name is then only in the metadata's
//! `collectionName`.

use base64::Engine;
use sha1::{Digest, Sha1};

const MAX_ESCAPED: usize = 238;
const TRUNCATED: usize = 208;

/// Go's `url.QueryEscape`: unreserved characters stay, space becomes `+`, the rest `%XX`.
pub fn query_escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `url.QueryUnescape`; `None` when the text is not valid escaping or not UTF-8.
pub fn query_unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The file stem (without `.bson` / `.metadata.json`) mongodump uses for a collection.
pub fn file_stem(collection: &str) -> String {
    let escaped = query_escape(collection);
    if escaped.len() <= MAX_ESCAPED {
        return escaped;
    }
    let hash = Sha1::digest(collection.as_bytes());
    let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash);
    format!("{}%24{hash}", &escaped[..TRUNCATED])
}

/// Whether a file stem is a truncated long name (its collection name is only in the metadata).
pub fn is_truncated_stem(stem: &str) -> bool {
    stem.len() == MAX_ESCAPED && stem.contains("%24")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        assert_eq!(query_escape("cafés"), "caf%C3%A9s");
        assert_eq!(query_escape("a b/c$d"), "a+b%2Fc%24d");
        assert_eq!(query_escape("system.js"), "system.js");
        assert_eq!(query_unescape("caf%C3%A9s").as_deref(), Some("cafés"));
        assert_eq!(query_unescape("a+b%2Fc%24d").as_deref(), Some("a b/c$d"));
        assert_eq!(query_unescape("bad%zz"), None);
    }

    #[test]
    fn long_names_match_the_mongo_tools_fixture() {
        // ../shared/fixtures/mongo-tools/mongorestore-testdata/longcollectionname
        let name = format!(
            "a{}LongCollectionNameConsistingOfExactlyTwoHundredAndFortySevenCharacters",
            "Very".repeat(44)
        );
        assert_eq!(name.len(), 247);
        let stem = file_stem(&name);
        assert_eq!(
            stem,
            format!(
                "a{}LongCollectionNameConsistingOfE%24xFO0VquRn7cg3QooSZD5sglTddU",
                "Very".repeat(44)
            )
        );
        assert!(is_truncated_stem(&stem));
    }
}
