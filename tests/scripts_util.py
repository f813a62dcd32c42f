"""Installing the compat scripts into an 'old installation' folder and running them as cron would."""

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Optional

from conftest import expect_ok, run_cli


def install_scripts(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    r = run_cli("install-scripts", str(folder))
    expect_ok(r)
    return folder


def set_variables(script: Path, **values) -> None:
    """Edits the `name = value` lines at the top of a restore script, as a user would."""
    text = script.read_text()
    for name, value in values.items():
        text, n = re.subn(r"^%s = .*$" % re.escape(name), lambda m: "%s = %r" % (name, value), text,
                          count=1, flags=re.M)
        assert n == 1, name
    script.write_text(text)


def run_script(script: Path, env: Optional[dict] = None, python: str = sys.executable, timeout: float = 600):
    """Runs a script like cron: no terminal, output captured."""
    full_env = dict(os.environ)
    for var in ("HTTP_PROXY", "http_proxy"):
        full_env.pop(var, None)
    full_env.update(env or {})
    r = subprocess.run([python, str(script)], capture_output=True, text=True, env=full_env,
                       stdin=subprocess.DEVNULL, timeout=timeout, cwd="/")
    r.cwd = "/"
    return r


STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")


def error_lines(stderr: str):
    """The `error:` lines of a run's stderr, without their timestamp (cron logs get one)."""
    lines = [STAMP.sub("", line) for line in stderr.splitlines()]
    return [line for line in lines if line.startswith("error:")]


def one_error(r, *words):
    """The run failed (exit 1) with exactly one `error:` line, and that line holds `words`."""
    assert r.returncode == 1, r.stdout + r.stderr
    lines = error_lines(r.stderr)
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], lines[0]
