# -*- coding: utf-8 -*-
# start.py -- run one MongoDB backup as config.properties (beside this file) describes.
# Installed by `mongo-oss-backup install-scripts`; the crontab line stays as it was, e.g.
#   0 4 * * * python /xxx/start.py >> /xxx/xxx.log 2>&1
# This file is valid Python 2 and 3. When the interpreter running it lacks the mongo-oss-backup
# package (a crontab's `python` may be 2.7), it re-runs the backup through the `mongo-oss-backup`
# console script instead.
import os
import sys

# The Python that installed these scripts (its bin/ holds the mongo-oss-backup console script).
INSTALLED_PYTHON = "@@PYTHON@@"

HERE = os.path.dirname(os.path.realpath(__file__))
CONFIG = os.path.join(HERE, "config.properties")
ARGS = ["backup", "--config", CONFIG]


def console_script():
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(folder, "mongo-oss-backup")
        if folder and os.access(candidate, os.X_OK):
            return candidate
    if INSTALLED_PYTHON and not INSTALLED_PYTHON.startswith("@@"):
        candidate = os.path.join(os.path.dirname(INSTALLED_PYTHON), "mongo-oss-backup")
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def main():
    try:
        from mongo_oss_backup import cli_main
    except ImportError:
        exe = console_script()
        if exe is None:
            import time
            sys.stderr.write(
                "%s error: the mongo-oss-backup package is not installed for %s and no mongo-oss-backup "
                "command was found; install it with: python3 -m pip install ./mongo_oss_backup-*.whl "
                "(the wheel ./build-wheel makes; from a source checkout: python3 -m pip install .)\n"
                % (time.strftime("%Y-%m-%d %H:%M:%S"), sys.executable))
            sys.stderr.flush()
            return 1
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(exe, [exe] + ARGS)
    return cli_main(["mongo-oss-backup"] + ARGS)


if __name__ == "__main__":
    sys.exit(main())
