//! `install-scripts DIR`: drops the compat scripts into an existing installation's folder, so its
//! crontab line (`python /xxx/start.py >> log`) keeps working. config.properties is written only
//! when the folder has none: an existing one is the operator's and is never touched.
//!
//! The restore scripts hold the operator's settings as variables at their top: the values found in
//! the scripts being replaced (the old ones, or ours edited after an earlier install) are carried
//! into the new ones, and a script being replaced is kept, as `<name>.orig` the first time (the old
//! scripts) and as `<name>.bak.<YYYYmmddHHMMSS>` after that, whenever it differs.

use std::path::Path;

use crate::error::{Error, ErrorKind, Result};

const START: &str = include_str!("../../python/mongo_oss_backup/scripts/start.py");
const RESTORE_INC: &str = include_str!("../../python/mongo_oss_backup/scripts/restore_inc.py");
const RESTORE_FULL: &str = include_str!("../../python/mongo_oss_backup/scripts/restore_full.py");
const CONFIG_TEMPLATE: &str = include_str!("../../config.properties");

/// Set by the Python console script: the interpreter that has the package.
const PYTHON_ENV: &str = "MONGO_OSS_BACKUP_PYTHON";

pub fn install(dir: &Path) -> Result<i32> {
    if !dir.is_dir() {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "{} is not a directory (give the folder of the old start.py)",
                dir.display()
            ),
        ));
    }
    let python = std::env::var(PYTHON_ENV).unwrap_or_default();
    let stamp = chrono::Local::now().format("%Y%m%d%H%M%S").to_string();
    for (name, text) in [
        ("start.py", START),
        ("restore_inc.py", RESTORE_INC),
        ("restore_full.py", RESTORE_FULL),
    ] {
        let path = dir.join(name);
        let mut new_text = text.replace("@@PYTHON@@", &python);
        if path.exists() {
            let old = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
            let (merged, carried) = carry_settings(&new_text, &old);
            new_text = merged;
            if !carried.is_empty() {
                println!("kept your settings in {name}: {}", carried.join(", "));
            }
            if old != new_text {
                // The old scripts' copy is `.orig` (the rollback the README describes); a copy of
                // ours, edited or older, is dated.
                let orig = dir.join(format!("{name}.orig"));
                let ours = old.contains("INSTALLED_PYTHON");
                let backup = match ours || orig.exists() {
                    false => orig,
                    true => dir.join(format!("{name}.bak.{stamp}")),
                };
                std::fs::copy(&path, &backup).map_err(|e| Error::io("keep a copy of", &path, e))?;
                println!("kept the previous {name} as {}", backup.display());
            }
        }
        std::fs::write(&path, new_text).map_err(|e| Error::io("write", &path, e))?;
        println!("wrote {}", path.display());
    }
    let config = dir.join("config.properties");
    if config.exists() {
        println!("kept {} as it is", config.display());
    } else {
        let mut f = crate::private::create_file(&config)?;
        std::io::Write::write_all(&mut f, CONFIG_TEMPLATE.as_bytes())
            .map_err(|e| Error::io("write", &config, e))?;
        println!("wrote {} (a template: edit it)", config.display());
    }
    Ok(0)
}

/// The settings block of a script: `name = value` lines at the top level, before
/// `INSTALLED_PYTHON` (the installer's own line).
fn settings(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .take_while(|l| !l.starts_with("INSTALLED_PYTHON"))
        .filter_map(assignment)
        .collect()
}

/// `name = value` on one line, not indented, not a comment.
fn assignment(line: &str) -> Option<(&str, &str)> {
    if line.starts_with(|c: char| c.is_whitespace() || c == '#') {
        return None;
    }
    let (name, value) = line.split_once('=')?;
    let name = name.trim();
    let identifier = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    let value = value.trim();
    (identifier && !value.is_empty() && !value.starts_with('=')).then_some((name, value))
}

/// `template` with the values `old` gives to the same settings; returns it and the names carried.
fn carry_settings(template: &str, old: &str) -> (String, Vec<String>) {
    let wanted = settings(template);
    let found = settings(old);
    let mut carried = Vec::new();
    let mut out = String::with_capacity(template.len());
    let mut in_settings = true;
    for line in template.split_inclusive('\n') {
        in_settings &= !line.starts_with("INSTALLED_PYTHON");
        let replacement = assignment(line.trim_end_matches(['\r', '\n']))
            .filter(|_| in_settings)
            .and_then(|(name, value)| {
                let (_, mine) = found.iter().find(|(n, _)| *n == name)?;
                (wanted.iter().any(|(n, _)| *n == name) && *mine != value).then_some((name, *mine))
            });
        match replacement {
            Some((name, value)) => {
                out.push_str(&format!("{name} = {value}\n"));
                carried.push(name.to_string());
            }
            None => out.push_str(line),
        }
    }
    (out, carried)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_carried_into_the_new_script() {
        let old = "# edited\nendpoint = \"oss-cn-beijing.aliyuncs.com\"\ndb_port = 27018\nunknown = 1\nx == 2\n";
        let (merged, carried) = carry_settings(RESTORE_INC, old);
        assert_eq!(carried, ["endpoint", "db_port"]);
        assert!(merged.contains("\nendpoint = \"oss-cn-beijing.aliyuncs.com\"\n"));
        assert!(merged.contains("\ndb_port = 27018\n"));
        assert!(!merged.contains("unknown"));
        assert_eq!(merged.lines().count(), RESTORE_INC.lines().count());
        let (same, none) = carry_settings(RESTORE_INC, RESTORE_INC);
        assert_eq!(same, RESTORE_INC);
        assert!(none.is_empty());
    }
}
