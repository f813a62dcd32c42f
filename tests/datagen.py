"""Test data with every common BSON type, and helpers that compare two databases exactly:
documents by _id on their raw bytes, indexes, collection options."""

import datetime
import random
import uuid
from typing import Dict, List

import bson
from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.raw_bson import RawBSONDocument


def rich_document(i: int, rng: random.Random) -> dict:
    return {
        "_id": i,
        "oid": ObjectId(),
        "s": "user-%d ✓ café 日本" % i,
        "i32": rng.randint(-2**31, 2**31 - 1),
        "i64": Int64(rng.randint(-2**62, 2**62)),
        "dbl": rng.random() * 1e6,
        "dec": Decimal128("%d.%02d" % (rng.randint(0, 10**6), rng.randint(0, 99))),
        "bool": bool(i % 2),
        "null": None,
        "date": datetime.datetime(2020, 1, 1) + datetime.timedelta(seconds=i),
        "ts": Timestamp(1700000000 + i, 1),
        "re": Regex("^a.*b$", "i"),
        "code": Code("function() { return %d; }" % i),
        "bin0": Binary(bytes(rng.getrandbits(8) for _ in range(16)), 0),
        "uuid": Binary(uuid.UUID(int=rng.getrandbits(128)).bytes, 4),
        "md5": Binary(bytes(16), 5),
        "user": Binary(b"\x01\x02", 128),
        "minkey": MinKey(),
        "maxkey": MaxKey(),
        "arr": [1, "two", 3.0, {"four": 4}, [5]],
        "sub": {"a": {"b": {"c": i}}, "ключ": "значение"},
        "loc": {"type": "Point", "coordinates": [rng.uniform(-180, 180), rng.uniform(-90, 90)]},
        "expires": datetime.datetime(2099, 1, 1),
        "tag": "t%d" % (i % 7) if i % 3 else None,
    }


def populate(db, n: int = 500, seed: int = 7) -> None:
    """Several collections with every common BSON type and many index kinds."""
    rng = random.Random(seed)
    db.people.insert_many([rich_document(i, rng) for i in range(n)])
    db.people.create_index([("s", 1)], unique=True)
    db.people.create_index([("i32", 1), ("dbl", -1)], name="compound")
    db.people.create_index([("expires", 1)], expireAfterSeconds=3600)
    db.people.create_index([("tag", 1)], sparse=True)
    db.people.create_index([("i64", 1)], partialFilterExpression={"bool": True})
    db.people.create_index([("dec", 1)], hidden=True)
    db.people.create_index([("loc", "2dsphere")])
    db.create_collection("names", collation={"locale": "fr", "strength": 2})
    db.names.insert_many([{"_id": ObjectId(), "name": "Émile %d" % i} for i in range(50)])
    db.names.create_index([("name", 1)], collation={"locale": "fr", "strength": 1}, name="name_fr")
    db.create_collection("capped", capped=True, size=1 << 20, max=1000)
    db.capped.insert_many([{"_id": i, "v": i} for i in range(20)])
    db.create_collection("validated", validator={"v": {"$type": "int"}}, validationLevel="moderate")
    db.validated.insert_many([{"_id": i, "v": i} for i in range(10)])
    db["cafés ünïcode"].insert_many([{"_id": "é%d" % i} for i in range(5)])
    db.command({"create": "adults", "viewOn": "people", "pipeline": [{"$match": {"bool": True}}]})
    db.empty.insert_one({"_id": 0})
    db.empty.delete_one({"_id": 0})


def raw_documents(db, name: str) -> Dict[bytes, bytes]:
    """_id (as its own raw BSON) → the raw bytes of the whole document."""
    out = {}
    for doc in db.get_collection(name, codec_options=bson.CodecOptions(document_class=RawBSONDocument)).find():
        out[bson.encode({"_id": doc["_id"]})] = doc.raw
    return out


def indexes(db, name: str) -> List[dict]:
    specs = []
    for spec in db[name].list_indexes():
        spec = dict(spec)
        spec.pop("ns", None)
        specs.append(spec)
    return sorted(specs, key=lambda s: s["name"])


def collections(db) -> Dict[str, dict]:
    return {c["name"]: {"type": c.get("type"), "options": c.get("options", {})} for c in db.list_collections()}


def _unordered(raw: bytes) -> str:
    """A document's content with field order ignored (nested too)."""
    from bson import json_util
    return json_util.dumps(bson.decode(raw), sort_keys=True)


def assert_same_database(src_db, dst_db, field_order: bool = True) -> None:
    """Same collections, options and indexes; documents byte for byte (or, with field_order=False,
    the same fields and values in any order)."""
    src_colls, dst_colls = collections(src_db), collections(dst_db)
    assert dst_colls == src_colls, (sorted(dst_colls.items()), sorted(src_colls.items()))
    for name, info in src_colls.items():
        if info["type"] == "view":
            continue
        src_docs, dst_docs = raw_documents(src_db, name), raw_documents(dst_db, name)
        if not field_order:
            src_docs = {k: _unordered(v) for k, v in src_docs.items()}
            dst_docs = {k: _unordered(v) for k, v in dst_docs.items()}
        diff = [(bson.decode(k)["_id"], src_docs.get(k), dst_docs.get(k))
                for k in set(src_docs) | set(dst_docs) if src_docs.get(k) != dst_docs.get(k)]
        assert not diff, (name, diff[:3])
        assert indexes(dst_db, name) == indexes(src_db, name), name
