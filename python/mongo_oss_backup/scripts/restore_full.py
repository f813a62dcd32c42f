# -*- coding: utf-8 -*-
# restore_full.py -- restore a full-mode backup (mongodb_backup_titan_<YYYYmmddHHMM>) from the bucket.
# Edit the variables below, stop writes to the database, then run: python3 restore_full.py
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
db_user = "test"
db_passwd = "test"
db_name = "chen"

# The backup's name; the object in the bucket is last_circle_backup_dir_name + last_full_backup_file_suffix
last_circle_backup_dir_name = "mongodb_backup_titan_201512221438"
last_full_backup_file_suffix = ".tar.gz"
# Where the archive is downloaded and extracted (the data is then at <this>/<name>/<db_name>)
restore_local_temp_path = "/tmp/mongodb_restore/"
# Kept for old copies of this script; no MongoDB binaries are needed any more.
mongo_shell_path = ""
# True: the backup is already extracted in restore_local_temp_path; do not download it
has_download_to_local = False
# True: drop each collection before restoring it
is_drop_old_restore = True
# Optional: restore into this database instead of db_name (e.g. to compare before switching over)
restore_to_db_name = ""

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
    return compat.restore_full_script(globals())


if __name__ == "__main__":
    sys.exit(main())
