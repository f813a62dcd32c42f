"""What an operator sees: progress bars when a person watches a terminal (driven through tmux), and
plain timestamped lines without a single control character when cron appends to a log file."""

import re
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import expect_ok, start_secantus, write_config

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO |WARN |ERROR|DEBUG) \S")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server of its own: the shared one is slowed down by everything the other tests wrote."""
    mongo = start_secantus(tmp_path_factory.mktemp("term-secantus"))
    try:
        yield mongo
    finally:
        mongo.stop()


@pytest.fixture(scope="module")
def big_installation(tmp_path_factory, server):
    db = "term_progress"
    client = server.client()
    for k in range(8):
        client[db].big.insert_many([{"_id": k * 10000 + i, "pad": "p" * 100} for i in range(10000)])
    tmp = tmp_path_factory.mktemp("term")
    return write_config(tmp / "inst", db_port=str(server.port), db_name=db, is_inc_backup="0",
                        storage_url="file://%s" % (tmp / "bucket"), db_backup_root_path=str(tmp / "root")), db


def test_progress_bars_on_a_terminal(big_installation, server):
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.skip("tmux is not installed")
    cfg, db = big_installation
    exe = shutil.which("mongo-oss-backup")
    sock = "mob-%s" % uuid.uuid4().hex[:8]
    # A restore of 80,000 documents takes seconds here (a dump of them, under one).
    server.client().drop_database(db + "_copy")
    command = ("%s backup --config %s && %s restore --config %s --full $(ls %s | grep -o '^mongodb_backup_titan_[0-9]*' "
               "| tail -1) --target-db %s_copy; echo EXIT=$?; sleep 60"
               % (exe, cfg, exe, cfg, cfg.parent.parent / "bucket", db))
    subprocess.run([tmux, "-L", sock, "new-session", "-d", "-x", "180", "-y", "40", command], check=True)
    screens = []
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            screen = subprocess.run([tmux, "-L", sock, "capture-pane", "-p"], capture_output=True,
                                    text=True).stdout
            screens.append(screen)
            if "EXIT=" in screen:
                break
            time.sleep(0.05)
    finally:
        subprocess.run([tmux, "-L", sock, "kill-server"], capture_output=True)
    final = screens[-1]
    assert "EXIT=0" in final, final
    bar = re.compile(r"restore %s_copy\.big\s+([\d,]+) docs [\d,.]+\S*/s [\d.]+ MB" % db)
    counts = [int(m.group(1).replace(",", "")) for s in screens for m in [bar.search(s)] if m]
    assert len(counts) >= 2, "no moving progress bar in %d screens; last:\n%s" % (len(screens), final)
    assert counts[-1] > counts[0] and counts == sorted(counts), counts  # it moves forward
    assert re.search(r"backup mongodb_backup_titan_\d{12}: 1 collection, 80000 documents", final), final
    assert re.search(r"restored %s_copy: 1 collection, 80000 documents" % db, final), final
    assert not bar.search(final)  # bars are cleared when their task ends


def test_cron_log_is_plain_lines(big_installation, tmp_path):
    cfg, db = big_installation
    log = tmp_path / "cron.log"
    with open(log, "ab") as out:  # what `start.py >> backup.log 2>&1` does
        r = subprocess.run([shutil.which("mongo-oss-backup"), "backup", "--config", str(cfg)], stdout=out,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=300)
    expect_ok(r)
    data = log.read_bytes()
    assert not [b for b in data if b < 0x20 and b != 0x0A], "control characters in the log"
    lines = data.decode().splitlines()
    summary = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d backup mongodb_backup_titan_")
    assert lines and all(LOG_LINE.match(l) or summary.match(l) for l in lines), lines
    assert summary.match(lines[-1])  # the summary line comes last, dated like the others
    steps = [l for l in lines if LOG_LINE.match(l)]
    assert any("dumped database %s" % db in l for l in steps) and any("uploaded" in l for l in steps)
