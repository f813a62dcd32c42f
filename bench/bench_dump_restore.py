#!/usr/bin/env python3
"""Dump and restore benchmark: our engine against baselines measured in the same run, on the same
secantusdb server and the same data.

  dump:    our full backup (dump, archive and upload overlapped, into a folder bucket and into the
           OSS test server, with and without the local copy of the archive), our dump alone (no upload), a bare Rust-driver cursor drain of the same
           collections (the floor the server allows), and a pymongo script writing the same .bson files;
  restore: our restore of that dump (extracted; from the OSS test server as it downloads, the
           default; and downloaded and extracted first), and pymongo insert_many of the same documents.
Each row gives wall seconds, the ratio to its baseline and CPU seconds (user + system, from
/usr/bin/time) per GB of BSON; then peak RSS, and the peak local disk of each backup (its root
sampled every 20 ms) against the archive's size. On this 2-core machine the server takes about a
core, so our CPU competes with it: CPU-s per GB is the figure that carries over to a fast server.

Usage: python bench/bench_dump_restore.py [--docs 500000] [--collections 4]
Needs: pip install '.[test]' (secantusdb, pymongo) and cargo (for the bare-drain baseline).
"""

import argparse
import collections
import json
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

from conftest import oss_config, start_oss_server, start_secantus, write_config  # noqa: E402


def tree_bytes(root):
    """Bytes of the files under root now (files come and go while a backup runs)."""
    total = 0
    for folder, _, files in os.walk(root):
        for f in files:
            try:
                total += os.stat(os.path.join(folder, f)).st_size
            except OSError:
                pass
    return total


Run = collections.namedtuple("Run", "seconds rss_mib stdout cpu_seconds peak_disk")


def timed(argv, env=None, watch=None):
    """Runs argv under /usr/bin/time: wall seconds, peak RSS, stdout, CPU seconds (user + system)
    and, with `watch` (a folder), the most bytes that folder held (sampled every 20 ms)."""
    rss_file = tempfile.NamedTemporaryFile(delete=False)
    out_file = tempfile.TemporaryFile()
    err_file = tempfile.TemporaryFile()
    started = time.perf_counter()
    proc = subprocess.Popen(["/usr/bin/time", "-f", "%M %U %S", "-o", rss_file.name] + argv, stdout=out_file,
                            stderr=err_file, env=dict(os.environ, **(env or {})))
    peak_disk = 0
    while proc.poll() is None:
        if watch is not None:
            peak_disk = max(peak_disk, tree_bytes(watch))
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    out_file.seek(0)
    err_file.seek(0)
    stdout, stderr = out_file.read().decode(), err_file.read().decode()
    if proc.returncode != 0:
        raise SystemExit("failed: %s\n%s\n%s" % (" ".join(argv), stdout, stderr))
    rss_kib, user, system = Path(rss_file.name).read_text().split()[-3:]
    os.unlink(rss_file.name)
    return Run(seconds, int(rss_kib) / 1024, stdout, float(user) + float(system), peak_disk)


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
    drain_exe = REPO / "target" / "release" / "examples" / "bare_drain"
    work = Path(tempfile.mkdtemp(prefix="bench-dump-"))
    server = start_secantus(work / "server", oplog_max_entries=2000)
    oss = start_oss_server(work / "oss")
    try:
        import pymongo
        client = pymongo.MongoClient("127.0.0.1", server.port, directConnection=True)
        t = time.perf_counter()
        populate(client, "bench", args.docs, args.collections)
        print("populated %d documents in %d collections in %.1fs" % (args.docs, args.collections,
                                                                       time.perf_counter() - t))
        uri = "mongodb://127.0.0.1:%d/?directConnection=true" % server.port

        drain = timed([str(drain_exe), uri, "bench", "4"])
        docs, size = int(drain.stdout.split()[0]), int(drain.stdout.split()[1])
        py_dump = pymongo_dump(server.port, "bench", work / "pydump")

        full_cfg = write_config(work / "full", db_port=str(server.port), db_name="bench",
                                storage_url="file://%s" % (work / "bucket"), db_backup_root_path=str(work / "root1"))
        full = timed([exe, "backup", "--config", str(full_cfg), "--json"], watch=work / "root1")
        oss_cfg = oss_config(work / "ossinst", oss, oss.add_bucket("bench"), db_port=str(server.port),
                             db_name="bench", db_backup_root_path=str(work / "root2"))
        streamed = timed([exe, "backup", "--config", str(oss_cfg), "--json"], env={"HTTP_PROXY": oss.proxy},
                         watch=work / "root2")
        nocopy_cfg = oss_config(work / "nocopy", oss, oss.add_bucket("bench-nocopy"), db_port=str(server.port),
                                db_name="bench", local_copy="0", db_backup_root_path=str(work / "root3"))
        nocopy = timed([exe, "backup", "--config", str(nocopy_cfg), "--json"], env={"HTTP_PROXY": oss.proxy},
                       watch=work / "root3")
        archive_size = json.loads(streamed.stdout)["size"]
        oss_name = json.loads(streamed.stdout)["name"]
        dump_cfg = write_config(work / "local", db_port=str(server.port), db_name="bench", is_upload_to_oss="0")
        dump_only = timed([exe, "backup", "--config", str(dump_cfg)])
        [dump_dir] = [p for p in (work / "local" / "work").iterdir() if p.is_dir()]

        restore_cfg = write_config(work / "restore", db_port=str(server.port), db_name="bench", is_upload_to_oss="0")
        restore = timed([exe, "restore", "--config", str(restore_cfg), "--full", dump_dir.name, "--downloaded",
                         "--local-dir", str(dump_dir.parent), "--target-db", "bench_ours"])
        assert client.bench_ours.c0.estimated_document_count() == args.docs // args.collections
        from_oss = [exe, "restore", "--config", str(oss_cfg), "--full", oss_name]
        oss_env = {"HTTP_PROXY": oss.proxy}
        stream_restore = timed(from_oss + ["--target-db", "bench_stream", "--local-dir", str(work / "rs1")],
                               env=oss_env, watch=work / "rs1")
        assert client.bench_stream.c0.estimated_document_count() == args.docs // args.collections
        extract_restore = timed(from_oss + ["--target-db", "bench_extract", "--download-first", "--local-dir",
                                            str(work / "rs2")], env=oss_env, watch=work / "rs2")
        assert client.bench_extract.c0.estimated_document_count() == args.docs // args.collections
        py_restore = pymongo_restore(server.port, dump_dir / "bench", "bench_py")
        assert client.bench_py.c0.estimated_document_count() == args.docs // args.collections
    finally:
        oss.proc.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    print()
    print("data: %d documents, %.1f MB of BSON, %d collections" % (docs, size / 1e6, args.collections))
    print("%-50s %8s %10s %8s %14s" % ("step", "seconds", "docs/s", "ratio", "CPU-s per GB"))
    rows = [
        ("bare Rust driver drain (floor)", drain, None),
        ("pymongo dump to .bson files", py_dump, drain),
        ("ours: dump only (no upload)", dump_only, drain),
        ("ours: full backup (dump+archive+store, file://)", full, drain),
        ("ours: full backup (streamed to OSS test server)", streamed, drain),
        ("ours: full backup to OSS, local_copy=0", nocopy, drain),
        ("pymongo insert_many restore (baseline)", py_restore, None),
        ("ours: restore of the extracted dump", restore, py_restore),
        ("ours: restore from OSS as it downloads (default)", stream_restore, py_restore),
        ("ours: restore from OSS, download+extract first", extract_restore, py_restore),
    ]
    for label, run, base in rows:
        ratio = "%.2fx" % (run.seconds / base.seconds) if base else "1.00x"
        print("%-50s %8.2f %10.0f %8s %14.1f" % (label, run.seconds, docs / run.seconds, ratio,
                                                 run.cpu_seconds / (size / 1e9)))
    print("ours vs pymongo dump: %.2fx" % (dump_only.seconds / py_dump.seconds))
    print("peak RSS: full backup %.0f MiB (OSS %.0f MiB), dump %.0f MiB, restore %.0f MiB (as it downloads"
          " %.0f MiB; bare drain %.0f MiB)" % (full.rss_mib, streamed.rss_mib, dump_only.rss_mib, restore.rss_mib,
                                              stream_restore.rss_mib, drain.rss_mib))
    print("peak local disk during a restore from OSS: as it downloads %.1f MB, download+extract first %.1f MB"
          % (stream_restore.peak_disk / 1e6, extract_restore.peak_disk / 1e6))
    print("peak local disk during the backup: file:// %.1f MB, OSS %.1f MB, OSS local_copy=0 %.1f MB; the archive"
          " %.1f MB (%.2fx, %.2fx, %.2fx), the BSON %.1f MB"
          % (full.peak_disk / 1e6, streamed.peak_disk / 1e6, nocopy.peak_disk / 1e6, archive_size / 1e6,
             full.peak_disk / archive_size, streamed.peak_disk / archive_size, nocopy.peak_disk / archive_size,
             size / 1e6))


if __name__ == "__main__":
    main()
