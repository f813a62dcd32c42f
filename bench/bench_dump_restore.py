#!/usr/bin/env python3
"""Dump and restore benchmark: our engine against baselines measured in the same run, on the same
secantusdb server and the same data.

  dump:    our full backup (dump + archive + store into a folder bucket), our dump alone (no upload),
           a bare Rust-driver cursor drain of the same collections (the floor the server allows),
           and a pymongo script writing the same .bson files;
  restore: our restore of that dump, and pymongo insert_many of the same documents.
Peak RSS of our process is read with /usr/bin/time.

Usage: python bench/bench_dump_restore.py [--docs 500000] [--collections 4]
Needs: pip install '.[test]' (secantusdb, pymongo) and cargo (for the bare-drain baseline).
"""

import argparse
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))

from conftest import start_secantus, write_config  # noqa: E402


def timed(argv, env=None):
    """Runs argv under /usr/bin/time; returns (seconds, peak RSS MiB, stdout)."""
    rss_file = tempfile.NamedTemporaryFile(delete=False)
    started = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file.name] + argv, capture_output=True, text=True,
                       env=dict(os.environ, **(env or {})))
    seconds = time.perf_counter() - started
    if r.returncode != 0:
        raise SystemExit("failed: %s\n%s\n%s" % (" ".join(argv), r.stdout, r.stderr))
    rss_kib = int(Path(rss_file.name).read_text().split()[-1])
    os.unlink(rss_file.name)
    return seconds, rss_kib / 1024, r.stdout


def populate(client, db_name, docs, collections):
    db = client[db_name]
    rng = random.Random(1)
    per = docs // collections
    payload = "x" * 120
    for c in range(collections):
        batch = []
        for i in range(per):
            batch.append({"_id": i, "n": rng.randint(0, 10**9), "s": payload, "f": rng.random(),
                          "sub": {"a": i, "b": [1, 2, 3]}})
            if len(batch) == 10000:
                db["c%d" % c].insert_many(batch, ordered=False)
                batch = []
        if batch:
            db["c%d" % c].insert_many(batch, ordered=False)


def pymongo_dump(port, db_name, out_dir):
    """Baseline: what a straightforward pymongo dumper does (raw documents to .bson files)."""
    script = f"""
import pymongo, os
from bson.raw_bson import RawBSONDocument
c = pymongo.MongoClient("127.0.0.1", {port}, directConnection=True, document_class=RawBSONDocument)
db = c[{db_name!r}]
os.makedirs({str(out_dir)!r}, exist_ok=True)
for name in db.list_collection_names():
    with open(os.path.join({str(out_dir)!r}, name + ".bson"), "wb") as f:
        for d in db[name].find(batch_size=10000):
            f.write(d.raw)
"""
    return timed([sys.executable, "-c", script])


def pymongo_restore(port, dump_dir, db_name):
    """Baseline: pymongo insert_many of the same documents, unordered, 10k per batch."""
    script = f"""
import pymongo, os, struct
from bson.raw_bson import RawBSONDocument
c = pymongo.MongoClient("127.0.0.1", {port}, directConnection=True, document_class=RawBSONDocument)
db = c[{db_name!r}]
for f in sorted(os.listdir({str(dump_dir)!r})):
    if not f.endswith(".bson"):
        continue
    data = open(os.path.join({str(dump_dir)!r}, f), "rb").read()
    pos, batch = 0, []
    while pos < len(data):
        (n,) = struct.unpack_from("<i", data, pos)
        batch.append(RawBSONDocument(data[pos:pos + n]))
        pos += n
        if len(batch) == 10000:
            db[f[:-5]].insert_many(batch, ordered=False)
            batch = []
    if batch:
        db[f[:-5]].insert_many(batch, ordered=False)
"""
    return timed([sys.executable, "-c", script])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=500_000)
    ap.add_argument("--collections", type=int, default=4)
    args = ap.parse_args()
    exe = shutil.which("mongo-oss-backup")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "bare_drain"], cwd=REPO, check=True)
    drain = REPO / "target" / "release" / "examples" / "bare_drain"
    work = Path(tempfile.mkdtemp(prefix="bench-dump-"))
    server = start_secantus(work / "server", oplog_max_entries=2000)
    try:
        import pymongo
        client = pymongo.MongoClient("127.0.0.1", server.port, directConnection=True)
        t = time.perf_counter()
        populate(client, "bench", args.docs, args.collections)
        print("populated %d documents in %d collections in %.1fs" % (args.docs, args.collections,
                                                                       time.perf_counter() - t))
        uri = "mongodb://127.0.0.1:%d/?directConnection=true" % server.port

        drain_s, drain_rss, out = timed([str(drain), uri, "bench", "4"])
        docs, size = int(out.split()[0]), int(out.split()[1])
        py_dump_s, _, _ = pymongo_dump(server.port, "bench", work / "pydump")

        full_cfg = write_config(work / "full", db_port=str(server.port), db_name="bench",
                                storage_url="file://%s" % (work / "bucket"))
        ours_full_s, ours_full_rss, _ = timed([exe, "backup", "--config", str(full_cfg)])
        dump_cfg = write_config(work / "local", db_port=str(server.port), db_name="bench", is_upload_to_oss="0")
        ours_dump_s, ours_dump_rss, _ = timed([exe, "backup", "--config", str(dump_cfg)])
        [dump_dir] = [p for p in (work / "local" / "work").iterdir() if p.is_dir()]

        restore_cfg = write_config(work / "restore", db_port=str(server.port), db_name="bench", is_upload_to_oss="0")
        ours_restore_s, ours_restore_rss, _ = timed([exe, "restore", "--config", str(restore_cfg), "--full",
                                                    dump_dir.name, "--downloaded", "--local-dir", str(dump_dir.parent),
                                                    "--target-db", "bench_ours"])
        assert client.bench_ours.c0.estimated_document_count() == args.docs // args.collections
        py_restore_s, _, _ = pymongo_restore(server.port, dump_dir / "bench", "bench_py")
        assert client.bench_py.c0.estimated_document_count() == args.docs // args.collections
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    print()
    print("data: %d documents, %.1f MB of BSON, %d collections" % (docs, size / 1e6, args.collections))
    print("%-48s %8s %10s %8s" % ("step", "seconds", "docs/s", "ratio"))
    rows = [
        ("bare Rust driver drain (floor)", drain_s, None),
        ("pymongo dump to .bson files", py_dump_s, drain_s),
        ("ours: dump only (no upload)", ours_dump_s, drain_s),
        ("ours: full backup (dump+archive+store, file://)", ours_full_s, drain_s),
        ("pymongo insert_many restore (baseline)", py_restore_s, None),
        ("ours: restore", ours_restore_s, py_restore_s),
    ]
    for label, secs, base in rows:
        ratio = "%.2fx" % (secs / base) if base else "1.00x"
        print("%-48s %8.2f %10.0f %8s" % (label, secs, docs / secs, ratio))
    print("ours vs pymongo dump: %.2fx" % (ours_dump_s / py_dump_s))
    print("peak RSS: full backup %.0f MiB, dump %.0f MiB, restore %.0f MiB (bare drain %.0f MiB)"
          % (ours_full_rss, ours_dump_rss, ours_restore_rss, drain_rss))


if __name__ == "__main__":
    main()
