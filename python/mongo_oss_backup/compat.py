"""Glue for the old scripts' interface: the restore scripts keep their settings as variables at the
top of the file; these helpers hand them to the Rust core and return the process exit code."""

from typing import Any, Dict, List, Tuple

from mongo_oss_backup import _core

# Variables of the old scripts that mean the same as the config.properties keys of the same name.
SHARED_KEYS = ("endpoint", "accessKeyId", "accessKeySecret", "bucket", "storage_url", "db_host", "db_port",
               "db_user", "db_passwd", "db_name", "mongo_shell_path", "oss_signature_version", "oss_region",
               "oss_credentials", "oss_ecs_role", "oss_security_token")


def settings_pairs(variables: Dict[str, Any]) -> List[Tuple[str, str]]:
    """The script's variables as config key/value strings (None and missing ones left out)."""
    return [(k, str(variables[k])) for k in SHARED_KEYS if variables.get(k) is not None]


def restore_full_script(variables: Dict[str, Any]) -> int:
    """What restore_full.py runs: prints a summary, returns the exit code (0, 1, 2 or 3)."""
    return _core.run_restore_full(
        settings_pairs(variables),
        name=str(variables["last_circle_backup_dir_name"]),
        suffix=str(variables.get("last_full_backup_file_suffix") or ""),
        local_temp=str(variables["restore_local_temp_path"]),
        downloaded=bool(variables.get("has_download_to_local")),
        drop=bool(variables.get("is_drop_old_restore")),
        target_db=str(variables.get("restore_to_db_name") or "") or None,
    )


def restore_inc_script(variables: Dict[str, Any]) -> int:
    """What restore_inc.py runs: prints a summary, returns the exit code."""
    return _core.run_restore_inc(
        settings_pairs(variables),
        cycle=str(variables["last_circle_backup_dir_name"]),
        local_temp=str(variables["restore_local_temp_path"]),
        downloaded=bool(variables.get("has_download_to_local")),
        drop=bool(variables.get("is_drop_old_restore")),
        until=str(variables.get("restore_until") or ""),
        target_db=str(variables.get("restore_to_db_name") or "") or None,
        allow_gap=bool(variables.get("allow_gap")),
    )
