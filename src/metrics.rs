//! The Prometheus text exposition format, as node_exporter's textfile collector reads it: one
//! `# HELP` and `# TYPE` line per gauge, then its sample with the installation's labels. The file is
//! replaced atomically (a temp file beside it, then rename), so the collector never reads half of
//! it; the temp name starts with a dot and does not end in `.prom`, so it is never collected.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Error, Result};

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

/// Replaces `path` with `text` (mode 0644: the collector often runs as another user; the file holds
/// no secret).
pub fn write_file(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o644);
    }
    let written = opts.open(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("write", &tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("rename", &tmp, e)
    })
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
