//! The Prometheus text exposition format, as node_exporter's textfile collector reads it: one
//! `# HELP` and `# TYPE` line per gauge, then its sample with the installation's labels. The file is
//! replaced atomically (a temp file beside it, then rename), so the collector never reads half of
//! it; the temp name starts with a dot and does not end in `.prom`, so it is never collected.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::Result;

/// One gauge and its value (`None`: not known yet, the sample is left out).
pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
    pub value: Option<f64>,
}

/// The gauges as exposition text, every sample carrying `labels`.
pub fn render(labels: &[(&str, &str)], gauges: &[Gauge]) -> String {
    let labels = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect::<Vec<_>>()
        .join(",");
    let mut text = String::new();
    for g in gauges {
        let _ = writeln!(text, "# HELP {} {}", g.name, g.help);
        let _ = writeln!(text, "# TYPE {} gauge", g.name);
        if let Some(v) = g.value {
            let _ = writeln!(text, "{}{{{labels}}} {v}", g.name);
        }
    }
    text
}

/// Label values escape backslash, double quote and newline.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Replaces `path` with `text` (readable by all: the collector often runs as another user; the
/// file holds no secret).
pub fn write_file(path: &Path, text: &str) -> Result<()> {
    crate::state::write_atomic_readable(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_escapes() {
        let text = render(
            &[("config", "/etc/a \"b\"\\c")],
            &[
                Gauge {
                    name: "x_seconds",
                    help: "X.",
                    value: Some(1796133784.0),
                },
                Gauge {
                    name: "y",
                    help: "Y.",
                    value: None,
                },
            ],
        );
        assert_eq!(
            text,
            "# HELP x_seconds X.\n# TYPE x_seconds gauge\nx_seconds{config=\"/etc/a \\\"b\\\"\\\\c\"} 1796133784\n# HELP y Y.\n# TYPE y gauge\n"
        );
    }

    #[test]
    fn replaces_the_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.prom");
        std::fs::write(&path, "old").unwrap();
        write_file(&path, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left");
    }
}
