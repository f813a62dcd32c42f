"""db_name empty: every database but admin, local and config is backed up, and a cycle restores each
of them under its own name, increments included (the old scripts' meaning of an empty db_name). A
private server is the source, so that no other test's databases are in its dump, and another one
the target of the restore."""

import json

from conftest import expect_ok, run_cli, start_secantus, write_config
from datagen import assert_same_database, populate

SYSTEM = {"admin", "local", "config"}


def test_every_database_cycle_streamed_and_downloaded(tmp_path):
    src = start_secantus(tmp_path / "src")
    dst = start_secantus(tmp_path / "dst")
    try:
        client = src.client()
        populate(client.shop, n=200, seed=1)
        populate(client.crm, n=100, seed=2)
        bucket = "file://%s" % (tmp_path / "bucket")
        cfg = write_config(tmp_path / "inst", db_port=str(src.port), db_name="", is_inc_backup="1",
                           full_backup_period="7", storage_url=bucket, db_backup_root_path=str(tmp_path / "root"))
        expect_ok(run_cli("backup", "--config", str(cfg)))
        # After the dump: writes to both databases, a dropped collection and a database made since.
        client.shop.people.update_many({"bool": True}, {"$set": {"after": "the dump"}})
        client.crm.validated.drop()
        client.fresh.made.insert_many([{"_id": i, "v": "made after the dump"} for i in range(30)])
        expect_ok(run_cli("backup", "--config", str(cfg)))
        [cycle] = json.loads(expect_ok(run_cli("list", "--config", str(cfg), "--json")).stdout)["cycles"]
        assert len(cycle["increments"]) == 1, cycle

        target = dst.client()
        names = set(client.list_database_names()) - SYSTEM
        assert names == {"shop", "crm", "fresh"}, names
        for way in ([], ["--download-first", "--local-dir", str(tmp_path / "dl")]):
            for db in names:
                target.drop_database(db)
            restore_cfg = write_config(tmp_path / "restore", db_port=str(dst.port), db_name="", is_inc_backup="1",
                                       storage_url=bucket, db_backup_root_path=str(tmp_path / "restore-root"))
            r = expect_ok(run_cli("restore", "--config", str(restore_cfg), "--cycle", cycle["name"], *way))
            assert set(target.list_database_names()) - SYSTEM == names, (way, r.stderr)
            for db in names:
                assert_same_database(client[db], target[db])
    finally:
        src.stop()
        dst.stop()
