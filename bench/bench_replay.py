#!/usr/bin/env python3
"""Oplog replay benchmark: our replay (`restore --cycle`) of N oplog entries against a pymongo loop
applying the same entries one round trip each, on the same secantusdb server in the same run.

The pymongo loop runs on the first --baseline-entries entries only (at a few hundred round trips a
second on this server, 200k would take over ten minutes); its rate is entries per second and is
compared with ours over all N. The entries are secantusdb-shaped (inserts, `$v:2` updateDescription updates, deletes) on four
collections, written as one increment of a cycle whose full dump is empty.

Usage: python bench/bench_replay.py [--entries 200000]
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bson
from bson import Timestamp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from conftest import start_secantus, write_config  # noqa: E402


def make_entries(n):
    rng = random.Random(3)
    entries, live, t = [], {c: [] for c in range(4)}, 1_700_000_000
    for i in range(n):
        c = rng.randrange(4)
        ns = "bench.c%d" % c
        roll = rng.random()
        ts = Timestamp(t + i // 1000, i % 1000 + 1)
        if roll < 0.55 or not live[c]:
            doc = {"_id": i, "n": i, "s": "x" * 80, "sub": {"a": i}}
            entries.append({"op": "i", "ns": ns, "o": doc, "o2": {"_id": i}, "ts": ts})
            live[c].append(i)
        elif roll < 0.9:
            target = rng.choice(live[c])
            diff = {"updatedFields": {"n": -i, "sub.b": i}, "removedFields": [], "truncatedArrays": []}
            entries.append({"op": "u", "ns": ns, "o": {"$v": 2, "diff": diff}, "o2": {"_id": target}, "ts": ts})
        else:
            target = live[c].pop(rng.randrange(len(live[c])))
            entries.append({"op": "d", "ns": ns, "o": {"_id": target}, "o2": {"_id": target}, "ts": ts})
    return entries


def pymongo_loop(port, entries_file, db):
    """Baseline: one round trip per entry, the way a simple replayer applies an oplog."""
    script = f"""
import bson, pymongo
c = pymongo.MongoClient("127.0.0.1", {port}, directConnection=True)
db = c[{db!r}]
for e in bson.decode_file_iter(open({str(entries_file)!r}, "rb")):
    coll = db[e["ns"].split(".", 1)[1]]
    if e["op"] == "i":
        coll.replace_one({{"_id": e["o"]["_id"]}}, e["o"], upsert=True)
    elif e["op"] == "u":
        d = e["o"]["diff"]
        update = {{"$set": d["updatedFields"]}}
        if d["removedFields"]:
            update["$unset"] = {{f: "" for f in d["removedFields"]}}
        coll.update_one({{"_id": e["o2"]["_id"]}}, update)
    else:
        coll.delete_one({{"_id": e["o"]["_id"]}})
"""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", script], check=True)
    return time.perf_counter() - started


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=200_000)
    ap.add_argument("--baseline-entries", type=int, default=20_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    entries = make_entries(args.entries)
    cycle = "mongodb_cycle_backup_titan_20200101000000"
    (work / "rs" / cycle / "full_backup" / "bench").mkdir(parents=True)
    inc = work / "rs" / cycle / "inc_backup" / "oplog_20200101000001"
    inc.mkdir(parents=True)
    with open(inc / "oplog.bson", "wb") as f:
        for e in entries:
            f.write(bson.encode(e))
    server = start_secantus(work / "server", oplog_max_entries=2000)
    try:
        import pymongo
        client = pymongo.MongoClient("127.0.0.1", server.port, directConnection=True)
        cfg = write_config(work / "cfg", db_port=str(server.port), db_name="bench", is_upload_to_oss="0")
        rss_file = work / "rss"
        started = time.perf_counter()
        r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), shutil.which("mongo-oss-backup"),
                            "restore", "--config", str(cfg), "--cycle", cycle, "--downloaded", "--local-dir",
                            str(work / "rs"), "--target-db", "ours"], capture_output=True, text=True)
        ours = time.perf_counter() - started
        if r.returncode != 0:
            raise SystemExit(r.stdout + r.stderr)
        rss = int(rss_file.read_text().split()[-1]) / 1024
        sample = entries[: args.baseline_entries]
        with open(work / "sample.bson", "wb") as f:
            for e in sample:
                f.write(bson.encode(e))
        baseline = pymongo_loop(server.port, work / "sample.bson", "loop")
        if len(sample) == len(entries):
            for c in range(4):
                a = list(client.ours["c%d" % c].find().sort("_id", 1))
                b = list(client.loop["c%d" % c].find().sort("_id", 1))
                assert a == b, "the two replays disagree"
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    n, m = len(entries), min(len(entries), args.baseline_entries)
    print("entries: %d (inserts, $v:2 updates, deletes on 4 collections, interleaved)" % n)
    print("%-48s %8s %8s %10s" % ("replay", "entries", "seconds", "entries/s"))
    print("%-48s %8d %8.2f %10.0f" % ("pymongo loop, one round trip per entry", m, baseline, m / baseline))
    print("%-48s %8d %8.2f %10.0f" % ("ours (batched per collection)", n, ours, n / ours))
    print("speed-up: %.1fx; our peak RSS %.0f MiB" % ((n / ours) / (m / baseline), rss))


if __name__ == "__main__":
    main()
