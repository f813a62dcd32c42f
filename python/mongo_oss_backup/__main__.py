"""`mongo-oss-backup` / `python -m mongo_oss_backup`: the Rust command line."""

import os
import sys


def main() -> "int":
    from mongo_oss_backup._core import cli_main

    # install-scripts records which interpreter has the package (start.py may run under Python 2).
    os.environ.setdefault("MONGO_OSS_BACKUP_PYTHON", sys.executable)
    argv = ["mongo-oss-backup", *sys.argv[1:]]
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
