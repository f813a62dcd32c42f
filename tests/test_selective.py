"""Selective and renamed restores (--ns-include/--ns-exclude/--ns-from/--ns-to) at a point in time:
one collection brought back beside the live database equals the source at that point byte for byte
with its indexes, a wildcard exclude restores the rest exactly, the replay follows collections through
renames out of the selection and back, a rebuild renamed over the target and a drop and recreate, the
live database is not touched, occupied targets are refused, and the same holds for a full-mode backup
and for mongod's own transaction entries."""

import json
import time

import pytest
from bson import Decimal128, json_util

import datagen
import mongo_oss_backup as mob
from conftest import FIXTURES, expect_ok, run_cli, write_config
from scripts_util import install_scripts, run_script

DB = "selsrc"


def snapshot(db, names=None):
    """Every collection's documents (raw bytes by _id) and indexes."""
    names = sorted(db.list_collection_names()) if names is None else names
    return {n: (datagen.raw_documents(db, n), datagen.indexes(db, n)) for n in names}


def assert_restored_as(db, name, expected, source_name):
    docs, indexes = expected
    assert datagen.raw_documents(db, name) == docs, name
    # The same indexes; only the namespace they are on differs.
    assert datagen.indexes(db, name) == indexes, (name, source_name)


def last_ts(client):
    return client.local.oplog.rs.find().sort("$natural", -1).limit(1).next()["ts"]


def order(i):
    return {"_id": i, "customer": i % 20, "total": Decimal128("%d.50" % (i % 300)),
            "items": [{"sku": "S%d" % (i % 7), "qty": 1 + i % 4}], "note": "order %d" % i}


@pytest.fixture(scope="module")
def cycle(tmp_path_factory, mongo):
    """A cycle of several collections: its full dump, increment 1 (CRUD, an index build, a rename out
    of the selection and back, a drop and recreate, a rebuild renamed over its target, a transaction
    across collections) and increment 2 (half of the orders deleted). Returns the source state at the
    end of increment 1 and the point it ends at."""
    tmp = tmp_path_factory.mktemp("selective")
    client = mongo.client()
    client.drop_database(DB)
    db = client[DB]
    db.orders.insert_many([order(i) for i in range(200)])
    db.orders.create_index([("customer", 1)])
    db.customers.insert_many([{"_id": i, "name": "customer %d" % i, "orders": 0} for i in range(20)])
    db.customers.create_index([("name", 1)], unique=True)
    db.tmp_cache.insert_many([{"_id": i} for i in range(10)])
    db.audit.insert_many([{"_id": i, "event": "old %d" % i} for i in range(5)])
    db.reports.insert_one({"_id": "stale"})
    inst = tmp / "inst"
    write_config(inst, db_port=str(mongo.port), db_name=DB, is_inc_backup="1", full_backup_period="7",
                 storage_url="file://%s" % (tmp / "bucket"), db_backup_root_path=str(tmp / "root"))
    install_scripts(inst)
    expect_ok(run_script(inst / "start.py"))

    db.orders.insert_many([order(i) for i in range(200, 250)])
    db.orders.update_many({"_id": {"$lt": 30}}, {"$set": {"status": "shipped"}, "$inc": {"customer": 100}})
    db.orders.update_one({"_id": 5}, {"$push": {"items": {"sku": "X", "qty": 9}}})
    db.orders.delete_many({"_id": {"$gte": 240}})
    db.orders.create_index([("total", -1), ("customer", 1)], name="by_total")
    with client.start_session() as s:
        with s.start_transaction():
            db.orders.insert_one(order(1000), session=s)
            db.customers.update_one({"_id": 0}, {"$inc": {"orders": 1}}, session=s)
    # Out of the selection (tmp_* is excluded below) and back, written to while outside.
    db.orders.rename("tmp_orders_parked")
    db.tmp_orders_parked.insert_many([order(i) for i in range(2000, 2003)])
    db.tmp_orders_parked.update_one({"_id": 1}, {"$set": {"parked": True}})
    db.tmp_orders_parked.rename("orders")
    db.drop_collection("audit")
    db.audit.insert_many([{"_id": i, "event": "new %d" % i} for i in range(2)])
    # A rebuild renamed over its target, as $out does.
    db.staging.insert_many([{"_id": i, "sum": i * 10} for i in range(4)])
    db.staging.rename("reports", dropTarget=True)
    mark = last_ts(client)
    at_mark = snapshot(db, ["orders", "customers", "audit", "reports"])
    time.sleep(1.1)
    expect_ok(run_script(inst / "start.py"))

    db.orders.delete_many({"_id": {"$lt": 120}})  # someone's script
    db.orders.insert_one(order(5000))
    db.customers.update_many({}, {"$set": {"late": True}})
    db.tmp_cache.insert_one({"_id": 99})
    time.sleep(1.1)
    expect_ok(run_script(inst / "start.py"))
    name = json.loads((tmp / "root" / "mongodb_inc_backup_info.json").read_text())["last_circle_backup_dir_name"]
    assert len(list((tmp / "bucket" / name / "inc_backup").iterdir())) == 2
    return {"tmp": tmp, "cfg": inst / "config.properties", "name": name, "mark": mark, "at_mark": at_mark}


def test_one_collection_at_a_point_in_time_beside_the_live_database(cycle, mongo):
    """(a) + (c): orders as it was before the deletion, into orders_restored, on the live server."""
    db = mongo.client()[DB]
    before = snapshot(db)
    mark = cycle["mark"]
    args = ["restore", "--config", str(cycle["cfg"]), "--cycle", cycle["name"], "--local-dir",
            str(cycle["tmp"] / "rs-a"), "--until", "%d:%d" % (mark.time, mark.inc),
            "--ns-include", "%s.orders" % DB, "--ns-from", "%s.orders" % DB, "--ns-to", "%s.orders_restored" % DB]
    dry = expect_ok(run_cli(*args, "--dry-run"))
    [line] = [x for x in dry.stdout.splitlines() if x.startswith("would restore %s." % DB)]
    # The history through the excluded name comes along; document count from the manifest.
    assert "%s.orders -> %s.orders_restored (200 documents in the dump;" % (DB, DB) in line, line
    assert "%s.tmp_orders_parked=" % DB in line, line
    assert snapshot(db) == before

    r = expect_ok(run_cli(*args))
    assert "outside the selection" in r.stdout, r.stdout
    assert_restored_as(db, "orders_restored", cycle["at_mark"]["orders"], "orders")
    after = snapshot(db)
    assert after.pop("orders_restored")
    assert after == before, "the live collections changed"

    # Again: the target now holds documents, refused in one line; nothing changes.
    again = run_cli(*args)
    assert again.returncode != 0
    assert "refusing to restore over %s.orders_restored (" % DB in again.stderr, again.stderr
    assert_restored_as(db, "orders_restored", cycle["at_mark"]["orders"], "orders")
    db.drop_collection("orders_restored")


def test_wildcard_exclude_restores_the_rest_exactly(cycle, mongo):
    """(b): every collection but tmp_*, at the end of the cycle, into another database; --drop empties
    only the targets."""
    client = mongo.client()
    client.drop_database("selcopy")
    client.selcopy.unrelated.insert_one({"_id": "keep me"})
    common = dict(config=cycle["cfg"], cycle=cycle["name"], local_dir=cycle["tmp"] / "rs-b",
                  ns_exclude=["%s.tmp_*" % DB], target_db="selcopy")
    plan = mob.restore(dry_run=True, **common)
    targets = {c.source: c.target for c in plan.selection.collections}
    assert targets == {"%s.%s" % (DB, n): "selcopy.%s" % n for n in ("audit", "customers", "orders", "reports")}
    reports = [c for c in plan.selection.collections if c.source.endswith(".reports")][0]
    # Rebuilt after the dump: its entries are those of the staging collection renamed over it.
    assert reports.dumped_as is None and list(reports.entries) == ["%s.staging" % DB], reports
    assert reports.entries["%s.staging" % DB] >= 4

    result = mob.restore(**common)
    assert result.replay.excluded > 0
    source = client[DB]
    for name in ("audit", "customers", "orders", "reports"):
        assert_restored_as(client.selcopy, name, snapshot(source, [name])[name], name)
    assert sorted(client.selcopy.list_collection_names()) == ["audit", "customers", "orders", "reports", "unrelated"]

    with pytest.raises(mob.ConfigError, match="refusing to restore over selcopy.audit"):
        mob.restore(**common)
    mob.restore(drop=True, **common)
    assert client.selcopy.unrelated.find_one() == {"_id": "keep me"}
    assert_restored_as(client.selcopy, "orders", snapshot(source, ["orders"])["orders"], "orders")


def test_selection_of_a_full_mode_backup(tmp_path, mongo):
    """(d): a full-mode backup, one collection restored under a new name beside the original."""
    client = mongo.client()
    client.drop_database("selfull")
    db = client.selfull
    db.orders.insert_many([order(i) for i in range(100)])
    db.orders.create_index([("customer", 1), ("total", -1)], name="c_t")
    db.other.insert_one({"_id": 1})
    inst = tmp_path / "inst"
    write_config(inst, db_port=str(mongo.port), db_name="selfull", is_inc_backup="0",
                 storage_url="file://%s" % (tmp_path / "bucket"), db_backup_root_path=str(tmp_path / "root"))
    install_scripts(inst)
    expect_ok(run_script(inst / "start.py"))
    [archive] = [p.name for p in (tmp_path / "bucket").iterdir() if p.name.endswith(".tar.gz")]
    name = archive[: -len(".tar.gz")]
    before = snapshot(db)
    db.orders.delete_many({"_id": {"$lt": 50}})
    after_delete = snapshot(db)
    r = expect_ok(run_cli("restore", "--config", str(inst / "config.properties"), "--full", name,
                          "--local-dir", str(tmp_path / "rs"), "--ns-include", "selfull.orders",
                          "--ns-from", "selfull.$c$", "--ns-to", "selfull.$c$_copy"))
    assert "selected selfull.orders -> selfull.orders_copy (100 documents in the dump;" in r.stdout, r.stdout
    assert_restored_as(db, "orders_copy", before["orders"], "orders")
    now = snapshot(db)
    now.pop("orders_copy")
    assert now == after_delete


TESTDATA = FIXTURES / "mongorestore-testdata"


@pytest.mark.skipif(not TESTDATA.is_dir(), reason="../shared/fixtures is absent (a plain clone)")
def test_mongod_transactions_with_a_selection(tmp_path, mongo):
    """(e): mongod's applyOps transactions (prepared, partialTxn chains) touching several collections:
    only the selected parts apply, under their new names."""
    from test_replay_fixtures import cycle_with_oplog, interleave
    cases = json_util.loads((TESTDATA / "transactions.json").read_text())
    collections = sorted({c["ns"].split(".", 1)[1] for c in cases.values()})
    cycle_name = "mongodb_cycle_backup_titan_20200101000002"
    cycle_with_oplog(tmp_path / "rs", cycle_name, "txntest", collections, interleave(c["ops"] for c in cases.values()))
    client = mongo.client()
    client.drop_database("txnsel")
    cfg = write_config(tmp_path, db_port=str(mongo.port), db_name="txntest", is_upload_to_oss="0")
    picked = {"c", "d", "g", "h"}  # unprepared small and large; prepared large committed and aborted
    args = ["restore", "--config", str(cfg), "--cycle", cycle_name, "--downloaded", "--local-dir",
            str(tmp_path / "rs"), "--ns-from", "txntest.$c$", "--ns-to", "txnsel.$c$_r"]
    for c in sorted(picked):
        args += ["--ns-include", "txntest.%s" % c]
    r = expect_ok(run_cli(*args))
    assert "outside the selection" in r.stdout
    for name, case in cases.items():
        coll = case["ns"].split(".", 1)[1]
        if coll in picked:
            assert list(client.txnsel[coll + "_r"].find().sort("_id", 1)) == case["postimage"], name
    assert sorted(client.txnsel.list_collection_names()) == sorted(c + "_r" for c in picked)
    assert "txntest" not in client.list_database_names()


def test_bad_selections_are_refused_in_one_line(cycle):
    base = ["restore", "--config", str(cycle["cfg"]), "--cycle", cycle["name"], "--local-dir",
            str(cycle["tmp"] / "rs-bad"), "--dry-run"]
    for extra, needle in [
        (["--ns-from", "%s.orders" % DB], "--ns-from and --ns-to come in pairs"),
        (["--ns-from", "%s.$c$" % DB, "--ns-to", "x.$d$"], "$d$ is not a variable of --ns-from"),
        (["--ns-include", "nosuch.*"], "the selection matches no collection"),
        (["--ns-include", "%s.orders" % DB, "--oplog-only"], "--oplog-only replays over the database"),
    ]:
        r = run_cli(*base, *extra)
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.returncode != 0 and lines and needle in lines[-1], (extra, r.stderr)
