//! OpenDAL's errors in a few words: what the network or the TLS layer said, the service's error
//! code, the object concerned; and the one warning line each storage retry becomes.

use opendal::layers::{RetryEvent, RetryInterceptor};

/// Each retry becomes one short warning line naming the operation, the object and the cause:
/// operators see flaky storage without a failed run, and no library internals.
pub(super) struct LogRetries;

impl RetryInterceptor for LogRetries {
    fn intercept(&self, event: RetryEvent<'_>) {
        let text = event.err.to_string();
        let object = context_value(&text, "path")
            .map(|p| format!(" {p}"))
            .unwrap_or_default();
        log::warn!(
            "storage: {}{object} failed ({}); retry {} in {:.1}s",
            event.op,
            short_cause(event.err),
            event.attempt,
            event.retry_after.as_secs_f64()
        );
    }
}

/// A value of OpenDAL's error context (`context: { service: fs, path: a/b }`).
fn context_value<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    let start = text.find(&format!("{key}: "))? + key.len() + 2;
    let rest = &text[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim()).filter(|v| !v.is_empty())
}

/// The cause of a storage error in a few words: what the network said, the service's error code,
/// or the first line of the message.
fn short_cause(e: &opendal::Error) -> String {
    let debug = format!("{e:?}");
    if let Some(cause) = unreachable_cause(&debug) {
        return cause.to_string();
    }
    if let Some(code) = debug
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code)
    {
        return code.to_string();
    }
    let status = debug
        .split_once("status: ")
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .filter(|s| s.len() == 3);
    if let Some(status) = status {
        return format!("HTTP {status}");
    }
    let mut line = first_line(e.message()).to_string();
    if let Some(source) = std::error::Error::source(e) {
        line = format!("{line}: {}", first_line(&source.to_string()));
    }
    line.chars().take(160).collect()
}

pub(super) fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// What the OS said when a connection could not be made, if that is what happened.
pub(super) fn unreachable_cause(debug_text: &str) -> Option<&'static str> {
    let lower = debug_text.to_ascii_lowercase();
    [
        ("connection refused", "connection refused"),
        ("dns error", "host name not found"),
        ("failed to lookup address", "host name not found"),
        ("timed out", "timed out"),
        ("operation timeout", "timed out"),
        ("connection reset", "connection reset"),
        ("network is unreachable", "network is unreachable"),
        ("tcp connect error", "cannot connect"),
        // TLS: the certificate, or an endpoint that does not speak TLS at all.
        (
            "unknownissuer",
            "TLS certificate not trusted: unknown issuer",
        ),
        (
            "causedasendentity",
            "TLS certificate not trusted: self-signed",
        ),
        ("notvalidforname", "TLS certificate for another host name"),
        (
            "invalid peer certificate: expired",
            "TLS certificate expired",
        ),
        ("invalidcertificate(expired", "TLS certificate expired"),
        ("invalid peer certificate", "TLS certificate rejected"),
        ("invalidcertificate", "TLS certificate rejected"),
        ("corrupt message", "no TLS there: an http:// endpoint?"),
        ("invalidcontenttype", "no TLS there: an http:// endpoint?"),
        ("error sending request", "no response"),
    ]
    .into_iter()
    .find(|(needle, _)| lower.contains(needle))
    .map(|(_, cause)| cause)
}

/// What the service said, from OpenDAL's `S3Error { code: "…", message: "…", … }` or the OSS
/// equivalent: `code: message`. An S3 bucket with Object Lock refusing an upload without checksum
/// also gets the setting that causes it.
pub(super) fn service_said(message: &str) -> Option<String> {
    let field = |name: &str| {
        let start = message.find(&format!("{name}: \""))? + name.len() + 3;
        let rest = &message[start..];
        Some(rest[..rest.find('"')?].to_string())
    };
    let (code, said) = (field("code")?, field("message")?);
    let mut line = if said.is_empty() {
        code
    } else {
        format!("{code}: {said}")
    };
    if line.contains("Object Lock") {
        line.push_str(" (uploads carry a CRC32C unless the storage_url says checksum=none)");
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::service_said;

    #[test]
    fn service_errors_in_their_own_words() {
        let m = r#"S3Error { code: "InvalidRequest", message: "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters", resource: "", request_id: "" }"#;
        assert_eq!(
            service_said(m).unwrap(),
            "InvalidRequest: Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object \
             requests with Object Lock parameters (uploads carry a CRC32C unless the storage_url \
             says checksum=none)"
        );
        let m = r#"S3Error { code: "EntityTooLarge", message: "", resource: "" }"#;
        assert_eq!(service_said(m).unwrap(), "EntityTooLarge");
        assert_eq!(service_said("connection closed"), None);
    }
}
