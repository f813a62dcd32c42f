"""restore_inc.py and `restore --cycle`: a cycle made by start.py (full dump + increments holding every
kind of write secantusdb logs) restores into a fresh server equal to the source, document bytes and
indexes included; --until stops at the right entry; --dry-run touches nothing; replaying again
changes nothing."""

import json
import re
import time

import bson
import pymongo

import datagen
from conftest import expect_ok, run_cli, start_secantus, write_config
from scripts_util import install_scripts, run_script, set_variables


def every_kind_of_write(db, client, round_no):
    c = db.items
    c.insert_many([{"_id": "%d-%d" % (round_no, i), "n": i, "sub": {"x": i, "y": [1, 2]}, "arr": [1, 2, 3]}
                   for i in range(20)])
    c.update_many({"n": {"$lt": 5}}, {"$set": {"sub.x": -1, "sub.z": "new", "flag": True}})
    c.update_many({"n": {"$gte": 15}}, {"$unset": {"sub.y": ""}, "$inc": {"n": 100}})
    c.update_one({"_id": "%d-1" % round_no}, {"$push": {"arr": {"$each": [4, 5]}}})
    c.update_one({"_id": "%d-2" % round_no}, {"$pull": {"arr": 2}})
    c.update_one({"_id": "%d-3" % round_no}, {"$pop": {"arr": 1}})
    c.update_one({"_id": "%d-4" % round_no}, {"$rename": {"sub": "moved"}})
    c.replace_one({"_id": "%d-5" % round_no}, {"replaced": round_no, "when": bson.Timestamp(5, 5)})
    c.update_one({"_id": "%d-6" % round_no}, [{"$set": {"piped": {"$add": ["$n", 1]}}}])
    c.delete_many({"n": {"$in": [7, 8]}})
    c.update_one({"_id": "upserted-%d" % round_no}, {"$set": {"u": 1}}, upsert=True)
    c.create_index([("n", 1), ("r%d" % round_no, 1)], name="n_%d" % round_no)
    db.create_collection("capped%d" % round_no, capped=True, size=4096)
    db["capped%d" % round_no].insert_one({"_id": 1})
    db.create_collection("tmp%d" % round_no)
    db["tmp%d" % round_no].insert_one({"_id": 1, "t": 1})
    db["tmp%d" % round_no].rename("renamed%d" % round_no)
    db.create_collection("gone%d" % round_no)
    db["gone%d" % round_no].insert_one({"_id": 1})
    db.drop_collection("gone%d" % round_no)
    with client.start_session() as s:
        with s.start_transaction():
            c.insert_one({"_id": "txn-%d" % round_no, "n": -1}, session=s)
            c.update_one({"_id": "%d-9" % round_no}, {"$set": {"in_txn": True}}, session=s)
            c.delete_one({"_id": "%d-10" % round_no}, session=s)


def make_cycle(tmp_path, mongo, db_name):
    client = mongo.client()
    client.drop_database(db_name)
    datagen.populate(client[db_name], n=100)
    inst = tmp_path / "inst"
    write_config(inst, db_port=str(mongo.port), db_name=db_name, is_inc_backup="1", full_backup_period="7",
                 storage_url="file://%s" % (tmp_path / "bucket"), db_backup_root_path=str(tmp_path / "root"))
    install_scripts(inst)
    expect_ok(run_script(inst / "start.py"))
    marks = []
    for round_no in range(2):
        every_kind_of_write(client[db_name], client, round_no)
        marks.append(client.local.oplog.rs.find().sort("$natural", -1).limit(1).next()["ts"])
        time.sleep(1.1)
        r = run_script(inst / "start.py")
        expect_ok(r)
        assert "increment" in r.stdout, r.stdout + r.stderr
    cycle = json.loads((tmp_path / "root" / "mongodb_inc_backup_info.json").read_text())["last_circle_backup_dir_name"]
    return inst, cycle, marks


def test_restore_inc_equals_source(tmp_path, mongo):
    inst, cycle, _ = make_cycle(tmp_path, mongo, "incsrc")
    fresh = start_secantus(tmp_path / "fresh")
    try:
        script = inst / "restore_inc.py"
        set_variables(script, storage_url="file://%s" % (tmp_path / "bucket"), db_host="127.0.0.1",
                      db_port=fresh.port, db_user="", db_passwd="", db_name="incsrc",
                      last_circle_backup_dir_name=cycle, restore_local_temp_path=str(tmp_path / "rs"))
        r = run_script(script)
        expect_ok(r)
        # secantusdb logs each of the two transactions op by op, without applyOps: counted as such.
        assert "2 transactions committed (2 logged op by op, without applyOps)" in r.stdout, r.stdout
        datagen.assert_same_database(mongo.client().incsrc, fresh.client().incsrc)

        # Restoring the same cycle again over the result (no drop) changes nothing: identical
        # documents are recognised, and the replay is idempotent.
        set_variables(script, has_download_to_local=True, is_drop_old_restore=False)
        r = run_script(script)
        expect_ok(r)
        datagen.assert_same_database(mongo.client().incsrc, fresh.client().incsrc)
    finally:
        fresh.stop()


def test_until_and_dry_run(tmp_path, mongo):
    inst, cycle, marks = make_cycle(tmp_path, mongo, "incuntil")
    cfg = inst / "config.properties"
    r = run_cli("restore", "--config", str(cfg), "--cycle", cycle, "--dry-run", "--local-dir", str(tmp_path / "rs"))
    expect_ok(r)
    assert "nothing was changed" in r.stdout and len(re.findall(r"oplog_\d{14}: ", r.stdout)) == 2
    client = mongo.client()
    r = run_cli("restore", "--config", str(cfg), "--cycle", cycle, "--downloaded", "--local-dir", str(tmp_path / "rs"),
                "--target-db", "incuntil_pit", "--drop", "--until", "%d:%d" % (marks[0].time, marks[0].inc))
    expect_ok(r)
    assert "stopped at --until after %d:%d" % (marks[0].time, marks[0].inc) in r.stdout
    pit = client.incuntil_pit
    assert pit.items.find_one({"_id": "txn-0"}) is not None      # first round applied
    assert pit.items.find_one({"_id": "txn-1"}) is None          # second round not
    assert "renamed0" in pit.list_collection_names() and "renamed1" not in pit.list_collection_names()
