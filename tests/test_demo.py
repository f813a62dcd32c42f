"""The README's demo command runs a real backup and restore on embedded defaults and succeeds."""

import subprocess
import sys
from conftest import expect_ok


def test_demo_runs(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mongo_oss_backup.demo"], capture_output=True, text=True,
                       timeout=600, cwd=tmp_path)
    expect_ok(r)
    assert r.stdout.count("byte-identical: True") == 2
    assert "view restored: ['big_spenders']" in r.stdout
    [bucket] = [line for line in r.stdout.splitlines() if line.startswith("bucket:")]
    assert bucket.count("inc_backup/oplog_") == 2
    assert "verified mongodb_cycle_backup_titan_" in r.stdout and "restored, compared and replayed in" in r.stdout
