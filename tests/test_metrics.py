"""The metrics file for the monitoring people already run: node_exporter's textfile format, written
atomically after every backup and verify (`metrics_file`) or by `status --prometheus FILE`, read here
by prometheus_client's own parser."""

import json
import os
import stat

from prometheus_client.parser import text_string_to_metric_families

import mongo_oss_backup as mob
from conftest import expect_ok, run_cli, write_config
from datagen import populate

P = "mongo_oss_backup_"


def read_metrics(path):
    """{name: (value, labels)} of every sample; every family must be a gauge with help text."""
    samples = {}
    for family in text_string_to_metric_families(path.read_text()):
        assert family.type == "gauge" and family.documentation, family
        for s in family.samples:
            assert s.name not in samples, "one sample per gauge"
            samples[s.name] = (s.value, s.labels)
    return samples


def value(samples, name):
    return samples[P + name][0]


def installation(tmp_path, mongo, db):
    (tmp_path / "bucket").mkdir(mode=0o700)
    return write_config(tmp_path / "inst", db_port=str(mongo.port), db_name=db, is_inc_backup="1",
                        full_backup_period="7", storage_url="file://%s" % (tmp_path / "bucket"),
                        db_backup_root_path=str(tmp_path / "root"), metrics_file="backup.prom",
                        create_bucket_folder="0")


def backup(cfg, *ok):
    r = run_cli("backup", "--config", str(cfg), "--json")
    expect_ok(r, *ok)
    return json.loads(r.stdout) if r.returncode == 0 else r


def test_metrics_file_follows_every_run(tmp_path, mongo):
    db = "metrics_db"
    client = mongo.client()
    client.drop_database(db)
    populate(client[db], n=200)
    cfg = installation(tmp_path, mongo, db)
    prom = cfg.parent / "backup.prom"  # a relative metrics_file is the config file's neighbour

    first = backup(cfg)
    st = json.loads(expect_ok(run_cli("status", "--config", str(cfg), "--json")).stdout)
    m = read_metrics(prom)
    assert m[P + "last_success_timestamp_seconds"][1] == {"config": str(cfg.resolve()), "db": db}
    assert value(m, "last_success_timestamp_seconds") == st["last_backup_at"]
    assert value(m, "last_run_success") == 1
    assert value(m, "last_run_stored_bytes") == first["size"] > 0
    assert value(m, "last_run_duration_seconds") > 0
    assert value(m, "position_timestamp_seconds") == first["position"]["t"]
    assert value(m, "pending_archives") == 0
    assert value(m, "oplog_window_seconds") >= 0 and value(m, "oplog_at_risk") == 0
    assert P + "last_failure_timestamp_seconds" not in m and P + "last_verify_success" not in m
    # Readable by a collector running as another user, and replaced whole: no temp file beside it.
    assert stat.S_IMODE(prom.stat().st_mode) == 0o644
    assert sorted(p.name for p in cfg.parent.iterdir() if p.name != "backup.lock") == [
        "backup.prom", "config.properties"]

    client[db].metrics_extra.insert_many([{"n": i} for i in range(30)])
    inc = backup(cfg)
    m = read_metrics(prom)
    assert inc["outcome"] == "increment"
    assert value(m, "last_run_stored_bytes") == inc["size"]
    assert value(m, "position_timestamp_seconds") == inc["position"]["t"]

    # A failed run (the bucket's share is not mounted) turns last_run_success to 0 and keeps the
    # last success's time; status says so too.
    (tmp_path / "bucket").rename(tmp_path / "unmounted")
    r = backup(cfg, 1)
    assert "does not exist" in r.stderr
    failed = read_metrics(prom)
    assert value(failed, "last_run_success") == 0
    assert value(failed, "last_failure_timestamp_seconds") >= value(m, "last_success_timestamp_seconds")
    assert value(failed, "last_success_timestamp_seconds") == value(m, "last_success_timestamp_seconds")
    r = run_cli("status", "--config", str(cfg))
    assert "the last run failed at" in r.stderr and "does not exist" in r.stderr
    (tmp_path / "unmounted").rename(tmp_path / "bucket")
    backup(cfg)
    assert value(read_metrics(prom), "last_run_success") == 1

    # verify records its result: ok, then a truncated increment.
    expect_ok(run_cli("verify", "--config", str(cfg)))
    m = read_metrics(prom)
    assert value(m, "last_verify_success") == 1 and value(m, "last_verify_timestamp_seconds") > 0
    inc_file = next((tmp_path / "bucket").rglob("oplog_*.tar.gz"))
    inc_file.write_bytes(inc_file.read_bytes()[:-10])
    expect_ok(run_cli("verify", "--config", str(cfg)), 1)
    assert value(read_metrics(prom), "last_verify_success") == 0
    r = run_cli("status", "--config", str(cfg))
    assert "the last verify of %s" % first["cycle"] in r.stderr


def test_status_writes_metrics_on_demand(tmp_path, mongo):
    db = "metrics_status"
    client = mongo.client()
    client.drop_database(db)
    populate(client[db], n=50)
    cfg = write_config(tmp_path / "inst", db_port=str(mongo.port), db_name=db, is_inc_backup="0",
                       storage_url="file://%s" % (tmp_path / "bucket"),
                       db_backup_root_path=str(tmp_path / "root"))
    out = tmp_path / "textfile" / "mob.prom"
    out.parent.mkdir()
    # Never run: the file still parses, with no success time and the pending count.
    expect_ok(run_cli("status", "--config", str(cfg), "--prometheus", str(out)), 1)
    m = read_metrics(out)
    assert P + "last_success_timestamp_seconds" not in m and P + "last_run_success" not in m
    assert value(m, "pending_archives") == 0

    result = mob.backup(config=cfg)
    st = mob.status(config=cfg, prometheus=out)
    m = read_metrics(out)
    assert value(m, "last_success_timestamp_seconds") == st.last_backup_at
    assert value(m, "last_run_stored_bytes") == result.size == st.last_stored_bytes
    # Full mode has no cycle and no oplog window.
    assert P + "position_timestamp_seconds" not in m and P + "oplog_window_seconds" not in m
    assert sorted(os.listdir(out.parent)) == ["mob.prom"]
