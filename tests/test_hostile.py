"""Nothing lost when life is not tidy: legal but awkward histories (a unique key swapped, `$` field
names, index specs with server-internal fields, renames across databases), lost or planted state,
clocks that stand still or step back, several installations in one bucket, odd roots, a share that
is not mounted. Each ends with a restore equal to the source, or a refusal in one line that writes
nothing."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path


from conftest import expect_ok, run_cli, write_config
from datagen import assert_same_database
from scripts_util import error_lines

PREFIX = "mongodb_cycle_backup_titan_"


class Install:
    """An installation backing up `db` in incremental mode into a folder bucket."""

    def __init__(self, tmp_path: Path, mongo, db: str, bucket=None, root=None, **extra):
        self.tmp, self.mongo, self.db = tmp_path, mongo, db
        self.client = mongo.client()
        self.bucket = bucket or tmp_path / "bucket"
        root = str(root or tmp_path / "root")
        values = dict(db_port=str(mongo.port), db_name=db, is_inc_backup="1", full_backup_period="7",
                      storage_url="file://%s" % self.bucket, db_backup_root_path=root)
        values.update(extra)
        self.cfg = write_config(tmp_path / "inst", **values)
        # (a relative root is the config file's neighbour)
        self.root = Path(root) if Path(root).is_absolute() else tmp_path / "inst" / root

    def backup(self, clock=None, cwd=None, ok=True):
        env = {"MONGO_OSS_BACKUP_TEST_CLOCK": clock} if clock else None
        r = run_cli("backup", "--config", str(self.cfg), "--json", env=env, cwd=cwd)
        if ok:
            expect_ok(r)
            return json.loads(r.stdout)
        return r

    def cycle(self) -> str:
        return json.loads((self.root / "mongodb_inc_backup_info.json").read_text())["last_circle_backup_dir_name"]

    def restore(self, target, *extra, cycle=None):
        if "--drop" not in extra:
            self.client.drop_database(target)
        r = run_cli("restore", "--config", str(self.cfg), "--cycle", cycle or self.cycle(), "--target-db", target,
                    "--local-dir", str(self.tmp / ("rs-%d" % time.monotonic_ns())), *extra)
        expect_ok(r)
        return r

    def restores_equal(self, target, *extra, cycle=None):
        r = self.restore(target, *extra, cycle=cycle)
        assert_same_database(self.client[self.db], self.client[target])
        return r


def fresh(mongo, db):
    client = mongo.client()
    client.drop_database(db)
    return client[db]


def one_error(r, *words):
    assert r.returncode != 0, r.stdout + r.stderr
    lines = error_lines(r.stderr)
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], lines[0]


# ---- replay --------------------------------------------------------------------------------------

def test_unique_key_swap(tmp_path, mongo):
    db = fresh(mongo, "h_swap")
    db.c.insert_many([{"_id": "A", "k": 1}, {"_id": "B", "k": 2}])
    db.c.create_index("k", unique=True)
    inst = Install(tmp_path, mongo, "h_swap")
    inst.backup()
    db.c.update_one({"_id": "A"}, {"$set": {"k": 3}})
    db.c.update_one({"_id": "B"}, {"$set": {"k": 1}})
    db.c.update_one({"_id": "A"}, {"$set": {"k": 2}})
    db.c.insert_one({"_id": "C", "k": 3})
    time.sleep(1.1)
    assert inst.backup()["outcome"] == "increment"
    inst.restores_equal("h_swap_r")


def test_dollar_prefixed_field_names(tmp_path, mongo):
    db = fresh(mongo, "h_dollar")
    db.c.insert_one({"_id": 1, "v": 1})
    inst = Install(tmp_path, mongo, "h_dollar")
    inst.backup()
    db.c.insert_one({"_id": 2, "$price": 5, "n": {"$x": 1}})
    db.c.update_one({"_id": 1}, [{"$replaceWith": {"$setField": {"field": {"$literal": "$cost"},
                                                                 "input": "$$ROOT", "value": 7}}}])
    db.c.update_one({"_id": 2}, {"$set": {"v": 2}})
    time.sleep(1.1)
    inst.backup()
    inst.restores_equal("h_dollar_r")


def test_restore_over_itself_with_dollar_field_names(tmp_path, mongo):
    """A restore into a database that already holds the collection writes the dump's documents by
    _id; a replacement refuses `$`-prefixed field names, so those documents are swapped whole."""
    db = fresh(mongo, "h_dollar_again")
    db.c.insert_many([{"_id": 1, "$price": 5, "n": {"$x": 1}}, {"_id": 2, "v": 1}, {"_id": 3, "$a": 1},
                      {"_id": 4, "$same": True}])
    inst = Install(tmp_path, mongo, "h_dollar_again")
    inst.backup()
    inst.restores_equal("h_dollar_again_r")
    target = mongo.client().h_dollar_again_r.c
    target.delete_one({"_id": 1})  # gone: inserted again
    target.delete_one({"_id": 3})
    target.insert_one({"_id": 3, "$a": 2})  # changed: replaced
    r = run_cli("restore", "--config", str(inst.cfg), "--cycle", inst.cycle(), "--target-db", "h_dollar_again_r",
                "--local-dir", str(tmp_path / "again"))
    expect_ok(r)
    assert_same_database(db, mongo.client().h_dollar_again_r)


def test_index_spec_with_server_internal_fields(tmp_path, mongo):
    db = fresh(mongo, "h_multikey")
    db.c.insert_one({"_id": 1, "tags": [1, 2]})
    inst = Install(tmp_path, mongo, "h_multikey")
    inst.backup()
    db.c.create_index("tags")  # logged with multikey: true
    db.c.insert_one({"_id": 2, "tags": [3]})
    spec = mongo.client().local.oplog.rs.find({"o.createIndexes": "c", "ns": "h_multikey.$cmd"}).next()["o"]
    assert any("multikey" in i for i in spec.get("indexes", [spec]))
    time.sleep(1.1)
    inst.backup()
    inst.restores_equal("h_multikey_r")


def test_rename_into_the_database_starts_a_new_cycle(tmp_path, mongo):
    db = fresh(mongo, "h_into")
    fresh(mongo, "h_other").x.insert_many([{"_id": i, "from": "other"} for i in range(5)])
    db.c.insert_one({"_id": 1})
    inst = Install(tmp_path, mongo, "h_into")
    first = inst.backup()["cycle"]
    mongo.client().admin.command("renameCollection", "h_other.x", to="h_into.moved")
    db.c.insert_one({"_id": 2})
    time.sleep(1.1)
    out = inst.backup()
    assert out["outcome"] == "full_dump" and out["cycle"] != first, out
    inst.restores_equal("h_into_r")
    assert mongo.client().h_into_r.moved.count_documents({}) == 5


def test_rename_out_of_the_database_is_a_drop(tmp_path, mongo):
    db = fresh(mongo, "h_out")
    fresh(mongo, "h_elsewhere")
    db.x.insert_many([{"_id": i} for i in range(3)])
    db.c.insert_one({"_id": 1})
    inst = Install(tmp_path, mongo, "h_out")
    inst.backup()
    mongo.client().admin.command("renameCollection", "h_out.x", to="h_elsewhere.y")
    db.c.insert_one({"_id": 2})
    time.sleep(1.1)
    assert inst.backup()["outcome"] == "increment"
    r = inst.restores_equal("h_out_r")
    assert "note: h_out.x was renamed to h_elsewhere.y, outside the restored database: it is dropped" in r.stdout


def test_drop_leaves_exactly_the_collections_of_the_point(tmp_path, mongo):
    db = fresh(mongo, "h_dropped")
    db.c.insert_many([{"_id": i} for i in range(5)])
    inst = Install(tmp_path, mongo, "h_dropped")
    inst.backup()
    db.later.insert_one({"_id": 1})
    db.c.insert_one({"_id": "late"})
    time.sleep(1.1)
    inst.backup()
    target = mongo.client().h_dropped_r
    target.stray.insert_one({"_id": "not in the backup"})
    target.later.insert_one({"_id": "old copy"})
    inst.restores_equal("h_dropped_r", "--drop")


# ---- cycle state and names -----------------------------------------------------------------------

def test_lost_last_json_is_recovered_from_the_manifest(tmp_path, mongo):
    db = fresh(mongo, "h_lost")
    db.c.insert_many([{"_id": i} for i in range(10)])
    inst = Install(tmp_path, mongo, "h_lost")
    cycle = inst.backup()["cycle"]
    db.c.insert_one({"_id": "a"})
    time.sleep(1.1)
    inst.backup()
    (inst.root / cycle / "last.json").unlink()
    db.c.update_one({"_id": "a"}, {"$set": {"v": 1}})
    time.sleep(1.1)
    out = inst.backup()
    assert out["cycle"] == cycle and out["outcome"] == "increment", out
    inst.restores_equal("h_lost_r")

    # Without a manifest to give it back, the cycle is never dumped into again: a new one starts.
    (inst.root / inst.cycle() / "last.json").unlink()
    (inst.root / inst.cycle() / "manifest.json").unlink()
    (inst.bucket / cycle / "manifest.json").unlink()
    db.c.insert_one({"_id": "b"})
    time.sleep(1.1)
    out = inst.backup()
    assert out["outcome"] == "full_dump" and out["cycle"] != cycle, out
    assert sorted(p.name for p in (inst.bucket / cycle).iterdir()) == ["full_backup.tar.gz", "inc_backup"]
    inst.restores_equal("h_lost_r2")


def test_two_increments_in_one_second_and_a_clock_stepping_back(tmp_path, mongo):
    db = fresh(mongo, "h_clock")
    db.c.insert_one({"_id": 1, "v": 0})
    inst = Install(tmp_path, mongo, "h_clock")
    inst.backup(clock="2026-06-01 12:00:00")
    names = []
    for v, clock in [(1, "2026-06-01 12:30:00"), (2, "2026-06-01 12:30:00"), (3, "2026-06-01 11:00:00")]:
        db.c.update_one({"_id": 1}, {"$set": {"v": v}})
        db.c.insert_one({"_id": "v%d" % v})
        out = inst.backup(clock=clock)
        assert out["outcome"] == "increment", out
        names.append(out["name"])
    assert names[0] == "oplog_20260601123000" and len(set(names)) == 3, names
    assert names[2] < names[0]  # named earlier, captured later
    assert len(list((inst.bucket / inst.cycle() / "inc_backup").iterdir())) == 3
    inst.restores_equal("h_clock_r")


def test_two_installations_in_one_bucket(tmp_path, mongo):
    bucket = tmp_path / "shared-bucket"
    fresh(mongo, "h_inst_a").c.insert_one({"_id": 1})
    fresh(mongo, "h_inst_b").c.insert_one({"_id": 1})
    a = Install(tmp_path / "a", mongo, "h_inst_a", bucket=bucket, full_backup_period="0", keep_cycles="1")
    b = Install(tmp_path / "b", mongo, "h_inst_b", bucket=bucket, cycle_prefix=PREFIX + "1_")
    same_prefix = Install(tmp_path / "c", mongo, "h_inst_b", bucket=bucket)
    b_cycle = b.backup()["cycle"]
    c_cycle = same_prefix.backup()["cycle"]
    a_cycles = []
    for _ in range(3):
        a_cycles.append(a.backup()["cycle"])
        time.sleep(1.1)
    left = sorted(p.name for p in bucket.iterdir())
    # A keeps its newest cycle only; B's (a longer prefix) and C's (another database) stay.
    assert left == sorted([a_cycles[-1], b_cycle, c_cycle]), left


def test_relative_and_windows_roots(tmp_path, mongo):
    fresh(mongo, "h_root").c.insert_one({"_id": 1})
    inst = Install(tmp_path, mongo, "h_root", root="work")
    first = inst.backup(cwd="/")
    assert (tmp_path / "inst" / "work" / "mongodb_inc_backup_info.json").exists()
    mongo.client().h_root.c.insert_one({"_id": 2})
    time.sleep(1.1)
    second = inst.backup(cwd=str(tmp_path / "inst"))
    assert second["cycle"] == first["cycle"] and second["outcome"] == "increment"
    # An old Windows root on this machine: the folder of that name beside the config, and a warning.
    win = Install(tmp_path / "win", mongo, "h_root", root="C:\\backup\\")
    r = win.backup(ok=False)
    expect_ok(r)
    assert 'db_backup_root_path "C:\\backup\\" is a Windows path' in r.stderr
    assert (tmp_path / "win" / "inst" / "C:\\backup\\" / "mongodb_inc_backup_info.json").exists()


def test_leftovers_of_killed_runs_are_removed(tmp_path, mongo):
    fresh(mongo, "h_left").c.insert_one({"_id": 1})
    inst = Install(tmp_path, mongo, "h_left")
    stale = inst.root / (PREFIX + "20200101000000") / "full_backup" / "h_left"
    stale.mkdir(parents=True)
    (stale / "c.bson").write_bytes(b"\x05\x00\x00\x00\x00")
    inst.backup()
    assert not stale.parent.parent.exists()
    assert sorted(p.name for p in inst.root.iterdir()) == sorted(
        ["mongodb_inc_backup_info.json", "mongo_oss_backup_last_run.json", inst.cycle()])


# ---- paths and places ----------------------------------------------------------------------------

def test_root_writable_by_others_or_planted_state_is_refused(tmp_path, mongo):
    fresh(mongo, "h_planted").c.insert_one({"_id": 1})
    root = tmp_path / "root"
    root.mkdir()
    root.chmod(0o777)
    inst = Install(tmp_path, mongo, "h_planted")
    r = inst.backup(ok=False)
    assert r.returncode == 2
    one_error(r, "is writable by others (mode 0777)")
    root.chmod(0o700)
    victim = tmp_path / "victim.json"
    victim.write_text("precious")
    os.symlink(victim, root / "mongodb_inc_backup_info.json")
    r = inst.backup(ok=False)
    one_error(r, "mongodb_inc_backup_info.json is a symbolic link")
    assert victim.read_text() == "precious" and not (inst.bucket.exists() and any(inst.bucket.iterdir()))


def test_unmounted_share_is_refused(tmp_path, mongo):
    db = fresh(mongo, "h_share")
    db.c.insert_one({"_id": 1})
    inst = Install(tmp_path, mongo, "h_share")
    inst.backup()
    db.c.insert_one({"_id": 2})
    time.sleep(1.1)
    inst.backup()
    # The share is unmounted: its mount point is an empty folder.
    shutil.move(str(inst.bucket), str(tmp_path / "share-away"))
    inst.bucket.mkdir()
    db.c.insert_one({"_id": 3})
    time.sleep(1.1)
    r = inst.backup(ok=False)
    one_error(r, "%s/manifest.json is missing from" % inst.cycle(), "mounted share")
    assert list(inst.bucket.iterdir()) == []
    shutil.rmtree(inst.bucket)
    shutil.move(str(tmp_path / "share-away"), str(inst.bucket))
    inst.backup()
    inst.restores_equal("h_share_r")


def test_disk_full_during_a_restore_names_the_cause(tmp_path, mongo):
    from test_faults import SmallDisk
    db = fresh(mongo, "h_full")
    db.c.insert_many([{"_id": i, "pad": os.urandom(300).hex()} for i in range(4000)])
    inst = Install(tmp_path, mongo, "h_full")
    inst.backup()
    disk = SmallDisk(tmp_path / "small")
    try:
        exe = shutil.which("mongo-oss-backup")
        restore = [exe, "restore", "--config", str(inst.cfg), "--cycle", inst.cycle(), "--target-db", "h_full_r",
                   "--local-dir", str(disk.path)]
        r = subprocess.run(restore + ["--download-first"], capture_output=True, text=True,
                           preexec_fn=disk.limit, timeout=300)
        one_error(r, "no space left on device" if disk.mounted else "too large")
        assert "not a readable archive" not in r.stderr
        assert "h_full_r" not in mongo.client().list_database_names()
        # Restored as it downloads, the dump needs no room on the disk (but for the manifest).
        for leftover in disk.path.iterdir():
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        expect_ok(subprocess.run(restore, capture_output=True, text=True, preexec_fn=disk.limit, timeout=300))
        assert_same_database(db, mongo.client()["h_full_r"])
        # verify --deep restores the same way: the small disk is enough for it too.
        verify = [exe, "verify", "--config", str(inst.cfg), inst.cycle(), "--deep", "--local-dir", str(disk.path),
                  "--json"]
        r = expect_ok(subprocess.run(verify, capture_output=True, text=True, preexec_fn=disk.limit, timeout=300))
        report = json.loads(r.stdout)
        assert report["ok"] and [c["namespace"] for c in report["deep"]["collections"]] == ["h_full.c"], report
        assert all(c["ok"] and c["expected_hash"] for c in report["deep"]["collections"]), report
    finally:
        disk.remove()
