"""Restores that are right or loudly refused. A cycle (full dump + three increments, each changing
documents under a unique index) is made once; each test damages a copy of its bucket the way a lost
object, a flipped byte or a tampered manifest would, and checks that the restore either gives back
exactly the source as of the chosen point, or refuses with one line naming the archive and the
positions, exit 1, before anything is written to the server."""

import io
import json
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import bson
import fastcrc
import pytest
from bson import Timestamp

import mongo_oss_backup as mob
from conftest import expect_ok, run_cli, write_config
from datagen import raw_documents
from scripts_util import error_lines, install_scripts, run_script, set_variables

DB = "chainsrc"


@dataclass
class Made:
    bucket: Path
    cycle: str
    manifest: dict
    increments: List[str]  # oplog_<stamp>, in order
    states: List[Dict[bytes, bytes]]  # the source's items after each increment
    port: int


def snapshot(db) -> Dict[bytes, bytes]:
    return raw_documents(db, "items")


@pytest.fixture(scope="module")
def made(tmp_path_factory, mongo) -> Made:
    work = tmp_path_factory.mktemp("chain")
    client = mongo.client()
    client.drop_database(DB)
    db = client[DB]
    db.items.insert_many([{"_id": i, "k": i, "v": "base"} for i in range(50)])
    db.items.create_index("k", unique=True)
    cfg = write_config(work / "inst", db_port=str(mongo.port), db_name=DB, is_inc_backup="1",
                       full_backup_period="7", storage_url="file://%s" % (work / "bucket"),
                       db_backup_root_path=str(work / "root"))
    r = run_cli("backup", "--config", str(cfg), "--json")
    expect_ok(r)
    cycle = json.loads(r.stdout)["cycle"]
    states = []
    for n in range(3):
        db.items.insert_many([{"_id": 100 * (n + 1) + i, "k": 100 * (n + 1) + i, "v": "r%d" % n}
                              for i in range(10)])
        db.items.update_many({"_id": {"$lt": 10}}, {"$inc": {"k": 1000}, "$set": {"v": "u%d" % n}})
        db.items.delete_one({"_id": 20 + n})
        time.sleep(1.1)
        r = run_cli("backup", "--config", str(cfg), "--json")
        expect_ok(r)
        assert json.loads(r.stdout)["outcome"] == "increment", r.stdout + r.stderr
        states.append(snapshot(db))
    bucket = work / "bucket"
    manifest = json.loads((bucket / cycle / "manifest.json").read_text())
    increments = sorted(p.name[:-len(".tar.gz")] for p in (bucket / cycle / "inc_backup").iterdir())
    assert len(increments) == 3
    return Made(bucket, cycle, manifest, increments, states, mongo.port)


class Copy:
    """A test's own copy of the bucket, a config pointing at it, and a restore into its own database."""

    def __init__(self, made: Made, tmp_path: Path, mongo, target: str):
        self.made, self.tmp, self.target = made, tmp_path, target
        self.bucket = tmp_path / "bucket"
        shutil.copytree(made.bucket, self.bucket)
        self.cfg = write_config(tmp_path / "inst", db_port=str(made.port), db_name=DB, is_inc_backup="1",
                                full_backup_period="7", storage_url="file://%s" % self.bucket,
                                db_backup_root_path=str(tmp_path / "root"))
        self.client = mongo.client()
        self.client.drop_database(target)

    def path(self, name: str) -> Path:
        return self.bucket / self.made.cycle / "inc_backup" / (name + ".tar.gz")

    def entry(self, key_end: str) -> dict:
        return next(a for a in self.made.manifest["archives"] if a["key"].endswith(key_end))

    def restore(self, *extra: str):
        return run_cli("restore", "--config", str(self.cfg), "--cycle", self.made.cycle, "--target-db",
                       self.target, "--local-dir", str(self.tmp / "rs"), *extra)

    def written(self) -> bool:
        return self.target in self.client.list_database_names()

    def assert_state(self, n: int):
        assert snapshot(self.client[self.target]) == self.made.states[n]


def pos(p: dict) -> str:
    return "%d:%d" % (p["t"], p["i"])


def refused(r, *words) -> str:
    """Exit 1 and exactly one error line holding every word."""
    assert r.returncode == 1, r.stdout + r.stderr
    lines = error_lines(r.stderr)
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def rewrite_increment(path: Path, change) -> bytes:
    """Rewrites an increment archive with its oplog.bson entries passed through `change`."""
    with tarfile.open(fileobj=io.BytesIO(path.read_bytes()), mode="r:gz") as t:
        members = [(m, t.extractfile(m).read() if m.isfile() else None) for m in t.getmembers()]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as t:
        for m, data in members:
            if data is not None and m.name.endswith("/oplog.bson"):
                data = b"".join(bson.encode(e) for e in change(bson.decode_all(data)))
                m.size = len(data)
            t.addfile(m, io.BytesIO(data) if data is not None else None)
    path.write_bytes(out.getvalue())
    return out.getvalue()


def edit_manifest(bucket: Path, cycle: str, name: str, **values) -> None:
    """Sets fields of increment `name`'s record in the bucket's manifest."""
    path = bucket / cycle / "manifest.json"
    manifest = json.loads(path.read_text())
    for a in manifest["archives"]:
        if a["key"].endswith("/%s.tar.gz" % name):
            a.update(values)
    path.write_text(json.dumps(manifest))


def test_whole_cycle_and_until_after_its_end(made, tmp_path, mongo):
    c = Copy(made, tmp_path, mongo, "chain_whole")
    r = c.restore("--until", "2100-01-01 00:00:00")
    expect_ok(r)
    c.assert_state(2)
    end = pos(c.entry(made.increments[-1] + ".tar.gz")["oplog_to"])
    assert "the cycle ends at %s (" % end in r.stdout
    assert "restored cycle %s up to %s (" % (made.cycle, end) in r.stdout and " UTC, " in r.stdout


def test_missing_increment_is_refused_then_allow_gap_and_until(made, tmp_path, mongo):
    c = Copy(made, tmp_path, mongo, "chain_gap")
    first, gone, third = made.increments
    c.path(gone).unlink()
    before = pos(c.entry(first + ".tar.gz")["oplog_to"])
    after = pos(c.entry(third + ".tar.gz")["oplog_from"])
    line = refused(c.restore(), "increment %s is missing: the chain jumps from %s to %s" % (gone, before, after))
    assert "--allow-gap restores up to %s" % before in line
    assert not c.written()

    # The old script's way: the same refusal.
    inst = install_scripts(tmp_path / "scripts")
    script = inst / "restore_inc.py"
    set_variables(script, storage_url="file://%s" % c.bucket, db_host="127.0.0.1", db_port=made.port, db_user="",
                  db_passwd="", db_name=DB, last_circle_backup_dir_name=made.cycle, restore_to_db_name=c.target,
                  restore_local_temp_path=str(tmp_path / "rs-script"))
    refused(run_script(script), "increment %s is missing" % gone)
    assert not c.written()

    r = c.restore("--allow-gap")
    expect_ok(r)
    assert "STOPPED EARLY: increment %s is missing" % gone in r.stdout and "restored up to %s" % before in r.stdout
    c.assert_state(0)

    # The Python API: the same refusal as an exception, the same cut as a result.
    c.client.drop_database(c.target)
    options = dict(config=c.cfg, cycle=made.cycle, target_db=c.target, local_dir=tmp_path / "rs-api")
    with pytest.raises(mob.IntegrityError, match="increment %s is missing" % gone):
        mob.restore(**options)
    assert not c.written()
    result = mob.restore(allow_gap=True, **options)
    assert result.chain.stopped.startswith("increment %s is missing" % gone)
    assert "%d:%d" % (result.reached.t, result.reached.i) == before
    c.assert_state(0)

    c.client.drop_database(c.target)
    r = c.restore("--until", before)
    expect_ok(r)
    c.assert_state(0)


def test_missing_local_increment_is_refused(made, tmp_path, mongo):
    c = Copy(made, tmp_path, mongo, "chain_local")
    r = c.restore("--download-first")
    expect_ok(r)
    c.assert_state(2)
    c.client.drop_database(c.target)
    gone = made.increments[1]
    shutil.rmtree(tmp_path / "rs" / made.cycle / "inc_backup" / gone)
    refused(c.restore("--downloaded"), "increment %s is missing" % gone)
    assert not c.written()


def test_changed_bytes_are_caught_by_the_manifest_crc64(made, tmp_path, mongo):
    c = Copy(made, tmp_path, mongo, "chain_flip")
    name = made.increments[1]

    def tamper(entries):
        for e in entries:
            if e.get("op") == "i" and e["o"].get("v") == "r1":
                e["o"]["v"] = "r7"
                break
        return entries

    # A valid archive with one value changed; the manifest's size follows, its CRC64 does not.
    data = rewrite_increment(c.path(name), tamper)
    edit_manifest(c.bucket, made.cycle, name, size=len(data))
    assert str(fastcrc.crc64.xz(data)) != c.entry(name + ".tar.gz")["crc64"]
    refused(c.restore(), "increment %s is damaged" % name, "CRC64 %d downloaded, %s recorded in the manifest"
            % (fastcrc.crc64.xz(data), c.entry(name + ".tar.gz")["crc64"]))
    assert not c.written()


def test_truncated_increment_is_refused_before_download(made, tmp_path, mongo):
    c = Copy(made, tmp_path, mongo, "chain_cut")
    name = made.increments[0]
    data = c.path(name).read_bytes()
    c.path(name).write_bytes(data[:-100])
    refused(c.restore(), "increment %s is damaged: %d bytes stored, %d recorded in the manifest"
            % (name, len(data) - 100, len(data)))
    assert not c.written()
    assert not (tmp_path / "rs" / made.cycle / "full_backup").exists()  # nothing was even downloaded


def test_entries_outside_their_range_are_refused(made, tmp_path, mongo):
    c = Copy(made, tmp_path, mongo, "chain_range")
    name = made.increments[0]
    to = c.entry(name + ".tar.gz")["oplog_to"]

    def one_more(entries):
        extra = dict(entries[-1])
        extra["ts"] = Timestamp(to["t"] + 5, 1)
        return entries + [extra]

    data = rewrite_increment(c.path(name), one_more)
    # The manifest is made to agree on size, CRC64 and count: only the range gives it away.
    entries = c.entry(name + ".tar.gz")["entries"] + 1
    edit_manifest(c.bucket, made.cycle, name, size=len(data), crc64=str(fastcrc.crc64.xz(data)), entries=entries)
    refused(c.restore(), "increment %s holds entries outside its range (%s, %s]"
            % (name, pos(c.entry(name + ".tar.gz")["oplog_from"]), pos(to)))
    assert not c.written()


def test_until_before_the_dump_and_dry_run(made, tmp_path, mongo):
    c = Copy(made, tmp_path, mongo, "chain_early")
    full = c.entry("full_backup.tar.gz")
    start = full["oplog_start"]
    early = "%d:0" % (start["t"] - 1)
    for extra in ((), ("--dry-run",)):
        refused(c.restore("--until", early, *extra), "cannot be restored to %s" % early,
                "the cycle starts at %s (" % pos(start), "the earliest point it can restore is %s ("
                % pos(full["oplog_end"]))
    assert not c.written()
    r = c.restore("--dry-run")
    expect_ok(r)
    assert "would restore cycle %s up to %s" % (made.cycle, pos(c.entry(made.increments[-1] + ".tar.gz")["oplog_to"])) in r.stdout
    assert not c.written()


def test_missing_full_dump_is_refused_unless_oplog_only(made, tmp_path, mongo):
    c = Copy(made, tmp_path, mongo, "chain_nodump")
    (c.bucket / made.cycle / "full_backup.tar.gz").unlink()
    refused(c.restore(), "the full dump of %s is missing" % made.cycle, "--oplog-only")
    assert not c.written()
    r = c.restore("--oplog-only")
    expect_ok(r)
    assert "note: --oplog-only: the full dump is not restored" in r.stdout
    assert c.client[c.target].items.count_documents({}) == 30  # the increments' inserts only


def test_list_and_verify_see_a_truncated_dump_and_a_gap(made, tmp_path, mongo):
    c = Copy(made, tmp_path, mongo, "chain_list")
    full = c.bucket / made.cycle / "full_backup.tar.gz"
    full.write_bytes(full.read_bytes()[:-10])
    (cycle,) = json.loads(run_cli("list", "--config", str(c.cfg), "--json").stdout)["cycles"]
    assert not cycle["complete"] and any("full dump" in p and "bytes stored" in p for p in cycle["problems"])
    r = run_cli("list", "--config", str(c.cfg))
    assert "INCOMPLETE" in r.stdout
    assert run_cli("verify", "--config", str(c.cfg)).returncode == 1

    # A manifest that lost an increment's record (and the bucket the increment): the chain breaks.
    shutil.rmtree(c.bucket)
    shutil.copytree(made.bucket, c.bucket)
    gone = made.increments[1]
    c.path(gone).unlink()
    manifest_path = c.bucket / made.cycle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["archives"] = [a for a in manifest["archives"] if not a["key"].endswith(gone + ".tar.gz")]
    manifest_path.write_text(json.dumps(manifest))
    (cycle,) = json.loads(run_cli("list", "--config", str(c.cfg), "--json").stdout)["cycles"]
    assert not cycle["complete"] and "an increment is missing" in cycle["problems"][0]
    r = run_cli("verify", "--config", str(c.cfg), "--json")
    assert r.returncode == 1 and "the chain jumps from" in json.loads(r.stdout)["problems"][0]


def test_restore_twice_over_itself(made, tmp_path, mongo):
    c = Copy(made, tmp_path, mongo, "chain_twice")
    r = c.restore("--download-first")
    expect_ok(r)
    c.assert_state(2)
    r = c.restore("--downloaded")
    expect_ok(r)
    assert "were there with other content and were replaced" in r.stdout
    c.assert_state(2)
    assert [i["name"] for i in c.client[c.target].items.list_indexes()] == ["_id_", "k_1"]
