"""`mongo-oss-backup` / `python -m mongo_oss_backup`: the Rust command line."""

import sys


def main() -> "int":
    from mongo_oss_backup._core import cli_main

    argv = ["mongo-oss-backup", *sys.argv[1:]]
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
