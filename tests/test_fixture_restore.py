"""Real mongodump directories from mongo-tools (../shared/fixtures) restore: every document of every
.bson file arrives byte-identical and the metadata's indexes are built. Where secantusdb lacks a
feature, the test says so and skips only that part."""

import json
import struct
from pathlib import Path

import bson
import pytest

import datagen
from conftest import FIXTURES, expect_ok, run_cli, write_config

TESTDATA = FIXTURES / "mongorestore-testdata"
pytestmark = pytest.mark.skipif(not TESTDATA.is_dir(), reason="../shared/fixtures is absent (a plain clone)")

# fixture directory → database directory inside it
CASES = {
    "testdirs": "db1",
    "foodump": "test",
    "indexmetadata": "indextest",
    "coll_with_index": "test",
    "coll_with_ttl_index": "test",
    "specialcharacter": "db1",
    "longcollectionname": "db1",
}


def bson_file_documents(path: Path):
    data = path.read_bytes()
    docs, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from("<i", data, pos)
        docs.append(data[pos:pos + length])
        pos += length
    return docs


def expected_collections(db_dir: Path):
    """collection name → (raw documents, metadata) as the dump holds them."""
    from urllib.parse import unquote_plus
    out = {}
    for f in sorted(db_dir.iterdir()):
        if f.name.endswith(".bson"):
            stem = f.name[: -len(".bson")]
            meta_path = db_dir / (stem + ".metadata.json")
            text = meta_path.read_text() if meta_path.exists() else ""
            meta = json.loads(text) if text.strip() else {}
            name = meta.get("collectionName") or unquote_plus(stem)
            out[name] = (bson_file_documents(f), meta)
    return out


@pytest.mark.parametrize("fixture", sorted(CASES))
def test_fixture_dump_restores(tmp_path, mongo, fixture):
    db_dir = TESTDATA / fixture / CASES[fixture]
    target = "fx%d" % sorted(CASES).index(fixture)  # short: a 247-character collection name must fit
    client = mongo.client()
    client.drop_database(target)
    cfg = write_config(tmp_path, db_port=str(mongo.port), db_name=CASES[fixture], is_upload_to_oss="0")
    r = run_cli("restore", "--config", str(cfg), "--full", fixture, "--downloaded", "--local-dir", str(TESTDATA),
                "--target-db", target)
    secantus_gap = None
    if fixture == "indexmetadata" and r.returncode == 3 and "failed index on test_coll_no_index_ns: a_1_b_true" in r.stdout:
        # Its key directions are Decimal128(-1), which mongod accepts and secantusdb refuses (code 1).
        secantus_gap = "secantusdb cannot build an index with Decimal128 key directions (mongod can)"
    else:
        expect_ok(r)
    db = client[target]
    expected = expected_collections(db_dir)
    assert expected, "the fixture holds no collection"
    for name, (docs, meta) in expected.items():
        restored = datagen.raw_documents(db, name)
        by_id = {bson.encode({"_id": bson.decode(d)["_id"]}): d for d in docs}
        assert restored == by_id, name
        wanted = {json.dumps(i["key"], sort_keys=True): i for i in meta.get("indexes", [])}
        got = {i["name"]: i for i in db[name].list_indexes()}
        for spec in wanted.values():
            if secantus_gap and spec["name"] == "a_1_b_true":
                continue
            assert spec["name"] in got, (name, spec["name"])
            if "expireAfterSeconds" in spec:
                assert got[spec["name"]]["expireAfterSeconds"] == spec["expireAfterSeconds"]
    if fixture == "testdirs":
        assert "not restored: baddir" in r.stdout
        assert set(db.list_collection_names()) == {"c1", "c2", "c3", "c4"}
    if fixture == "specialcharacter":
        assert db.list_collection_names() == ["cafés"]
    if secantus_gap:
        pytest.skip(secantus_gap + "; documents and other indexes were checked")


def test_hashed_and_text_index_metadata(tmp_path, mongo):
    """Text and hashed indexes come from the fixtures' metadata: secantusdb refuses both (code 67),
    so the restore must name each refused index and exit 3 while restoring every document."""
    src = TESTDATA / "hashedIndexes.metadata.json"
    dump = tmp_path / "dumps" / "hashdump" / "hdb"
    dump.mkdir(parents=True)
    (dump / "hashed.metadata.json").write_text(src.read_text())
    (dump / "hashed.bson").write_bytes(b"".join(bson.encode({"_id": i, "a": i}) for i in range(5)))
    text_meta = {"indexes": [{"v": 2, "key": {"_id": 1}, "name": "_id_"},
                             {"v": 2, "key": {"_fts": "text", "_ftsx": 1}, "name": "body_text",
                              "weights": {"body": 1}, "default_language": "english", "textIndexVersion": 3}],
                 "collectionName": "texts"}
    (dump / "texts.metadata.json").write_text(json.dumps(text_meta))
    (dump / "texts.bson").write_bytes(bson.encode({"_id": 1, "body": "hello"}))
    client = mongo.client()
    client.drop_database("fx_hashed")
    cfg = write_config(tmp_path, db_port=str(mongo.port), db_name="hdb", is_upload_to_oss="0")
    r = run_cli("restore", "--config", str(cfg), "--full", "hashdump", "--downloaded", "--local-dir",
                str(tmp_path / "dumps"), "--target-db", "fx_hashed")
    assert client.fx_hashed.hashed.count_documents({}) == 5 and client.fx_hashed.texts.count_documents({}) == 1
    if r.returncode == 0:
        return  # a server with text and hashed indexes built them all
    assert r.returncode == 3, r.stdout + r.stderr
    assert "failed index on texts: body_text" in r.stdout
    assert "failed index on hashed:" in r.stdout
    pytest.skip("secantusdb lacks text and hashed indexes (code 67): the refusals were reported, exit 3")
