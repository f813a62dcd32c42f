#!/usr/bin/env python3
"""Archive-stage benchmark, independent of the MongoDB server: a generated dump directory (several
collections, mixed document shapes, --size-mb of BSON; generated once into --cache and reused) is
archived by our engine (gzip on one thread, gzip on every core, zstd, and both encrypted with age)
and by GNU tar with gzip, pigz and zstd, all in the same run; then archived and stored into a folder
bucket and into the OSS test server; then extracted back (ours, with and without age, and GNU tar).

Each row runs in its own process; wall seconds, CPU seconds (user + sys, from wait4), peak RSS and
the archive size are read for that process alone. Ratios are against our single-thread gzip.

Usage: python bench/bench_archive.py [--size-mb 1024] [--level 6] [--zstd-level 3] [--cache ~/.cache/mongo-oss-backup-bench]
Needs: pip install '.[test]'; pigz and zstd commands for those rows (skipped, and said, without).
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

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
         "quebec romeo sierra tango uniform victor whiskey xray yankee zulu order paid shipped refunded").split()


def document(i, rng, shape):
    """Documents of three shapes: users, orders with line items, and events with free text."""
    if shape == 0:
        return {"_id": i, "name": "%s %s" % (rng.choice(WORDS).title(), rng.choice(WORDS).title()),
                "email": "user%d@example.com" % i, "age": rng.randint(18, 90), "score": rng.random() * 100,
                "tags": rng.sample(WORDS, 3), "address": {"city": rng.choice(WORDS), "zip": "%05d" % rng.randint(0, 99999)}}
    if shape == 1:
        return {"_id": i, "user": rng.randint(0, 10**6), "status": rng.choice(WORDS[-4:]),
                "total": round(rng.random() * 1000, 2),
                "items": [{"sku": "SKU-%06d" % rng.randint(0, 999999), "qty": rng.randint(1, 5),
                           "price": round(rng.random() * 100, 2)} for _ in range(rng.randint(1, 6))]}
    return {"_id": i, "kind": rng.choice(WORDS), "at": 1700000000 + i,
            "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40))),
            "blob": rng.randbytes(rng.randint(0, 64))}


def generate(root: Path, size_mb: int) -> Path:
    dump = root / ("dump-%dmb" % size_mb) / "full_backup"
    done = dump.parent / "complete"
    if done.exists():
        return dump
    shutil.rmtree(dump.parent, ignore_errors=True)
    db = dump / "bench"
    db.mkdir(parents=True)
    rng = random.Random(7)
    target = size_mb << 20
    per_collection = target // 6
    t = time.perf_counter()
    for c in range(6):
        shape = c % 3
        with open(db / ("c%d.bson" % c), "wb") as f:
            written, i = 0, 0
            while written < per_collection:
                raw = bson.encode(document(i, rng, shape))
                f.write(raw)
                written += len(raw)
                i += 1
        (db / ("c%d.metadata.json" % c)).write_text('{"indexes":[{"v":2,"key":{"_id":1},"name":"_id_"}]}')
    done.write_text("ok")
    print("generated %d MB of BSON in %s in %.0fs" % (size_mb, dump, time.perf_counter() - t))
    return dump


def measure(argv, cwd=None, env=None):
    """Runs argv in its own process: (wall s, cpu s, peak RSS MiB)."""
    started = time.perf_counter()
    p = subprocess.Popen(argv, cwd=cwd, env=dict(os.environ, **(env or {})), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - started
    err = p.stderr.read().decode()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit("failed (%d): %s\n%s" % (p.returncode, " ".join(argv), err))
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def py(code):
    return [sys.executable, "-c", code]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/mongo-oss-backup-bench"))
    ap.add_argument("--level", type=int, default=6)
    ap.add_argument("--zstd-level", type=int, default=3, help="our zstd rows and GNU tar's zstd row")
    args = ap.parse_args()
    dump = generate(Path(args.cache), args.size_mb)
    input_bytes = sum(p.stat().st_size for p in dump.rglob("*") if p.is_file())
    work = Path(tempfile.mkdtemp(prefix="bench-archive-"))
    cores = os.cpu_count() or 1
    lvl, zl = args.level, args.zstd_level
    rows = []

    def row(label, argv, out, cwd=None, env=None, input_size=input_bytes):
        if out.exists():
            out.unlink()
        wall, cpu, rss = measure(argv, cwd=cwd, env=env)
        size = out.stat().st_size if out.exists() else None
        rows.append((label, wall, cpu, rss, size, input_size))
        print("  %-44s %7.1fs" % (label, wall), flush=True)

    ours = ("import mongo_oss_backup as m; m.create_archive(%r, %r, level=%d, compression=%r, threads=%d)")
    sealed = ours[:-1] + ", recipients=%r)"
    identity = work / "age.key"
    try:
        public = subprocess.run([sys.executable, "-m", "mongo_oss_backup", "keygen", str(identity)], check=True,
                                capture_output=True, text=True).stdout.strip()
        print("archiving %.0f MB on %d cores:" % (input_bytes / 1e6, cores))
        g1, gn, zs = work / "ours1.tar.gz", work / "oursn.tar.gz", work / "ours.tar.zst"
        row("ours gzip -%d, 1 thread" % lvl, py(ours % (str(dump), str(g1), lvl, "gzip", 1)), g1)
        row("ours gzip -%d, %d threads" % (lvl, cores), py(ours % (str(dump), str(gn), lvl, "gzip", 0)), gn)
        row("ours zstd -%d, %d threads" % (zl, cores), py(ours % (str(dump), str(zs), zl, "zstd", 0)), zs)
        # Client-side encryption (age) on top of the same codecs: what encrypt_recipients costs.
        ga, za = work / "ours.tar.gz.age", work / "ours.tar.zst.age"
        row("ours gzip -%d, %d threads + age" % (lvl, cores), py(sealed % (str(dump), str(ga), lvl, "gzip", 0, public)),
            ga)
        row("ours zstd -%d, %d threads + age" % (zl, cores), py(sealed % (str(dump), str(za), zl, "zstd", 0, public)),
            za)
        tar_gz = work / "gnu.tar.gz"
        row("GNU tar czf (gzip -%d)" % lvl, ["tar", "-I", "gzip -%d" % lvl, "-cf", str(tar_gz), dump.name],
            tar_gz, cwd=dump.parent)
        if shutil.which("pigz"):
            pz = work / "pigz.tar.gz"
            row("GNU tar -I 'pigz -%d -p %d'" % (lvl, cores), ["tar", "-I", "pigz -%d -p %d" % (lvl, cores), "-cf",
                                                              str(pz), dump.name], pz, cwd=dump.parent)
        else:
            print("  (pigz is not installed: its row is skipped)")
        if shutil.which("zstd"):
            zt = work / "gnu.tar.zst"
            row("GNU tar -I 'zstd -%d -T0'" % zl, ["tar", "-I", "zstd -%d -T0" % zl, "-cf", str(zt), dump.name], zt,
                cwd=dump.parent)
        else:
            print("  (zstd is not installed: its row is skipped)")

        print("archive + store:")
        from conftest import oss_config, start_oss_server, write_config
        folder_cfg = write_config(work / "folder", storage_url="file://%s" % (work / "bucket"), create_bucket_folder="1",
                                  is_upload_to_oss="1")
        store = ("import mongo_oss_backup as m, pathlib; a = pathlib.Path(%r); "
                 "m.create_archive(%r, str(a), level=%d, threads=0); "
                 "m.Storage(config=%r).put_file(str(a), 'bench/full_backup.tar.gz')")
        stored = work / "bucket" / "bench" / "full_backup.tar.gz"
        row("ours gzip, %d threads + store (folder)" % cores,
            py(store % (str(work / "s1.tar.gz"), str(dump), lvl, str(folder_cfg))), stored)
        oss = start_oss_server(work / "oss")
        try:
            oss_cfg = oss_config(work / "ossinst", oss, oss.add_bucket("bench"), is_upload_to_oss="1")
            marker = work / "s2.tar.gz"
            row("ours gzip, %d threads + store (OSS test server)" % cores,
                py(store % (str(marker), str(dump), lvl, str(oss_cfg))), marker,
                env={"HTTP_PROXY": oss.proxy})
        finally:
            oss.proc.stop()

        print("extract:")
        for label, archive, argv in [
            ("ours extract (gzip, parallel-made)", gn,
             py("import mongo_oss_backup as m; m.extract_archive(%r, %r)" % (str(gn), str(work / "x1")))),
            ("ours extract (zstd)", zs,
             py("import mongo_oss_backup as m; m.extract_archive(%r, %r)" % (str(zs), str(work / "x2")))),
            ("ours extract (zstd + age)", za,
             py("import mongo_oss_backup as m; m.extract_archive(%r, %r, identity=%r)"
                % (str(za), str(work / "x2"), str(identity)))),
            ("GNU tar xzf", gn, ["tar", "-xzf", str(gn), "-C", str(work / "x3")]),
        ]:
            (work / "x3").mkdir(exist_ok=True)
            wall, cpu, rss = measure(argv)
            rows.append((label, wall, cpu, rss, archive.stat().st_size, input_bytes))
            print("  %-44s %7.1fs" % (label, wall), flush=True)
            for x in ("x1", "x2", "x3"):
                shutil.rmtree(work / x, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base = rows[0]
    print()
    print("%-48s %8s %8s %9s %8s %9s %8s" % ("", "MB/s", "CPU s/GB", "size MB", "ratio", "peak MiB", "speed×"))
    for label, wall, cpu, rss, size, data in rows:
        print("%-48s %8.1f %8.1f %9s %8s %9.0f %8.2f" % (
            label, data / wall / 1e6, cpu / (data / 1e9), "%.1f" % (size / 1e6) if size else "-",
            "%.3f" % (size / data) if size else "-", rss, base[1] / wall))


if __name__ == "__main__":
    main()
