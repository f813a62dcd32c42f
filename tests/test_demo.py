"""The README's demo command runs a real backup and restore on embedded defaults and succeeds; if it
hangs, everything it started is stopped and its folder is left in the test's own tmp directory."""

import os
import signal
import subprocess
import sys

from conftest import expect_ok


def test_demo_runs(tmp_path):
    # --small: the same steps on a tenth of the data (the full demo is timed by users, not by the suite).
    # Its own process group (the demo and the secantusdb it starts), its temp folder under tmp_path.
    proc = subprocess.Popen([sys.executable, "-m", "mongo_oss_backup.demo", "--small"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path, start_new_session=True,
                            env=dict(os.environ, TMPDIR=str(tmp_path)))
    try:
        out, err = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    r = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    expect_ok(r)
    assert r.stdout.count("byte-identical: True") == 2
    assert "view restored: ['big_spenders']" in r.stdout
    [bucket] = [line for line in r.stdout.splitlines() if line.startswith("bucket:")]
    assert bucket.count("inc_backup/oplog_") == 2
    assert "verified mongodb_cycle_backup_titan_" in r.stdout and "restored, compared and replayed in" in r.stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("mongo-oss-backup-demo-")]  # cleaned up
