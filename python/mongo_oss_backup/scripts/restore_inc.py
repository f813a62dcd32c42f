# -*- coding: utf-8 -*-
# restore_inc.py -- restore an incremental cycle: its full dump, then every oplog increment in order.
# Edit the variables below, stop writes to the database, then run: python3 restore_inc.py
# The restore user needs readWrite + dbAdmin on db_name (no applyOps/anyAction role).
import os
import sys

## 阿里云oss 配置 (Aliyun OSS)
endpoint = "oss.aliyuncs.com"
accessKeyId = "xxxxxxx"
accessKeySecret = "xxxxxxx"
bucket = "db-backup"
# Optional: another bucket instead: file:///abs/dir, s3://bucket?endpoint=http://host:9000&region=r
storage_url = ""

## mongodb导入的配置 (MongoDB to restore into)
db_host = "localhost"
db_port = 27017
db_user = "testr"
db_passwd = "testr"
db_name = "chen"

# The cycle to restore: last_circle_backup_dir_name of mongodb_inc_backup_info.json, or a folder in the bucket
last_circle_backup_dir_name = "mongodb_cycle_backup_titan_20151124141133"
# Where the cycle is downloaded and extracted
restore_local_temp_path = "/tmp/mongodb_restore/"
# Kept for old copies of this script; no MongoDB binaries are needed any more.
mongo_shell_path = ""
# True: the cycle is already downloaded and extracted in restore_local_temp_path
has_download_to_local = False
# True: drop each collection before restoring it
is_drop_old_restore = True
# Optional: restore into this database instead of db_name (e.g. to compare before switching over)
restore_to_db_name = ""
# Optional point in time: stop after the last oplog entry at or before it.
# "" = everything; "2015-11-24 18:30:00" (local time); or an oplog timestamp "1448361000:1"
restore_until = ""
# Before anything is written, the cycle is checked: its full dump, then increments that join end to
# end, each archive as its manifest recorded it. A missing or damaged increment stops the restore
# with one line; True restores up to the last point before it instead (and says where it stopped).
allow_gap = False

INSTALLED_PYTHON = "@@PYTHON@@"


def main():
    try:
        from mongo_oss_backup import compat
    except ImportError:
        if INSTALLED_PYTHON and not INSTALLED_PYTHON.startswith("@@") and os.access(INSTALLED_PYTHON, os.X_OK) \
                and os.path.realpath(INSTALLED_PYTHON) != os.path.realpath(sys.executable):
            os.execv(INSTALLED_PYTHON, [INSTALLED_PYTHON, os.path.realpath(__file__)] + sys.argv[1:])
        sys.stderr.write("error: the mongo-oss-backup package is not installed for %s; install it with: "
                         "python3 -m pip install ./mongo_oss_backup-*.whl (the wheel ./build-wheel makes; from a "
                         "source checkout: python3 -m pip install .)\n" % sys.executable)
        return 1
    return compat.restore_inc_script(globals())


if __name__ == "__main__":
    sys.exit(main())
