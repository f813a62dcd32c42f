//! `install-scripts DIR`: drops the compat scripts into an existing installation's folder, so its
//! crontab line (`python /xxx/start.py >> log`) keeps working. config.properties is written only
//! when the folder has none: an existing one is the operator's and is never touched.

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
    for (name, text) in [
        ("start.py", START),
        ("restore_inc.py", RESTORE_INC),
        ("restore_full.py", RESTORE_FULL),
    ] {
        let path = dir.join(name);
        if path.exists() {
            let backup = dir.join(format!("{name}.orig"));
            if !backup.exists() {
                std::fs::copy(&path, &backup).map_err(|e| Error::io("keep a copy of", &path, e))?;
                println!("kept the old {name} as {}", backup.display());
            }
        }
        std::fs::write(&path, text.replace("@@PYTHON@@", &python))
            .map_err(|e| Error::io("write", &path, e))?;
        println!("wrote {}", path.display());
    }
    let config = dir.join("config.properties");
    if config.exists() {
        println!("kept {} as it is", config.display());
    } else {
        let mut f = crate::archive::create_private(&config)?;
        std::io::Write::write_all(&mut f, CONFIG_TEMPLATE.as_bytes())
            .map_err(|e| Error::io("write", &config, e))?;
        println!("wrote {} (a template: edit it)", config.display());
    }
    Ok(0)
}
