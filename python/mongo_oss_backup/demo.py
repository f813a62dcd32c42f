"""`python -m mongo_oss_backup.demo`: a real backup and restore on this machine, with embedded
defaults. It starts secantusdb (a MongoDB-compatible server) in a temporary folder on a free port,
fills a database, installs the compat scripts into a fake old installation whose config.properties
points at a folder bucket (incremental mode), runs start.py as cron would for the cycle's full backup
and two increments with writes in between (a transaction among them), restores the cycle into a
second database with restore_inc.py, compares the two document by document, and says what it did
and how long each step took. Then it stops the server and removes its folder (`--keep` keeps it to
look at); interrupted (Ctrl-C, a kill), it cleans up too.

Needs the demo extra: pip install 'mongo-oss-backup[demo]' (secantusdb and pymongo).
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _step(label, started):
    print("  %-58s %6.2fs" % (label, time.perf_counter() - started))


def main() -> int:
    try:
        import bson
        import pymongo
        from bson.raw_bson import RawBSONDocument
    except ImportError:
        print("the demo needs pymongo and secantusdb: pip install 'mongo-oss-backup[demo]'")
        return 1
    server_exe = shutil.which("secantusd-py")
    if server_exe is None:
        print("the demo needs secantusdb (a MongoDB-compatible test server): pip install 'mongo-oss-backup[demo]'")
        return 1
    cli = shutil.which("mongo-oss-backup") or sys.argv[0]
    work = Path(tempfile.mkdtemp(prefix="mongo-oss-backup-demo-"))
    port = _free_port()
    print("demo folder: %s" % work)
    started = time.perf_counter()
    (work / "server").mkdir()
    log = open(work / "server" / "secantus.log", "wb")
    # In the demo's own process group: whatever stops the demo (Ctrl-C, a kill of the group)
    # stops the server too.
    server = subprocess.Popen([server_exe, "--host", "127.0.0.1", "--port", str(port), "--storage-path",
                               str(work / "server" / "data")], cwd=work / "server", stdout=log,
                              stderr=subprocess.STDOUT)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        client = pymongo.MongoClient("127.0.0.1", port, directConnection=True, serverSelectionTimeoutMS=20000)
        client.admin.command("ping")
        _step("started secantusdb on 127.0.0.1:%d" % port, started)

        t = time.perf_counter()
        # --small: a tenth of the data, for the test suite (the same steps, less waiting on the server).
        customers, orders = (2_000, 3_000) if "--small" in sys.argv[1:] else (20_000, 30_000)
        shop = client.shop
        shop.customers.insert_many([{"_id": i, "name": "customer %d" % i, "city": ["Hangzhou", "Beijing"][i % 2],
                                     "since": bson.Int64(1_600_000_000 + i)} for i in range(customers)])
        shop.customers.create_index([("name", 1)], unique=True)
        shop.orders.insert_many([{"customer": i % customers, "total": bson.Decimal128("%d.99" % (i % 500)),
                                  "items": [{"sku": "A%d" % (i % 40), "qty": 1 + i % 3}]} for i in range(orders)])
        shop.orders.create_index([("customer", 1), ("total", -1)])
        shop.command({"create": "big_spenders", "viewOn": "orders", "pipeline": [{"$match": {"total": {"$gt": 400}}}]})
        _step("wrote database shop: {:,} documents, 2 collections, 1 view".format(customers + orders), t)

        install = work / "old-installation"
        install.mkdir()
        bucket = work / "bucket"
        (install / "config.properties").write_text(
            "db_host = 127.0.0.1\ndb_port = %d\ndb_user =\ndb_passwd =\ndb_name = shop\n"
            "db_backup_root_path = %s/\nmongo_shell_path =\nis_inc_backup = 1\nfull_backup_period = 7\n"
            "is_upload_to_oss = 1\nstorage_url = file://%s\ncreate_bucket_folder = 1\n" % (port, work / "backups", bucket))
        (install / "config.properties").chmod(0o600)  # it would hold the secrets
        t = time.perf_counter()
        subprocess.run([cli, "install-scripts", str(install)], check=True, stdout=subprocess.DEVNULL)
        _step("installed start.py, restore_inc.py, restore_full.py", t)

        def cron_run(label):
            t = time.perf_counter()
            r = subprocess.run([sys.executable, str(install / "start.py")], capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(r.stdout + r.stderr)
            _step("start.py: " + label, t)
            return r.stdout.strip()

        logs = [cron_run("the cycle's full backup")]
        t = time.perf_counter()
        shop.customers.update_many({"city": "Hangzhou"}, {"$set": {"vip": True}, "$inc": {"since": 1}})
        shop.orders.delete_many({"total": {"$lt": bson.Decimal128("10")}})
        shop.customers.insert_many([{"_id": 100_000 + i, "name": "new customer %d" % i} for i in range(500)])
        _step("writes: 10,000 updates, deletes, 500 inserts", t)
        time.sleep(1.1)  # increments are named by the second
        logs.append(cron_run("increment 1"))
        t = time.perf_counter()
        with client.start_session() as session:
            with session.start_transaction():
                shop.orders.insert_one({"customer": 100_000, "total": bson.Decimal128("999.99")}, session=session)
                shop.customers.update_one({"_id": 100_000}, {"$push": {"tags": "first-order"}}, session=session)
        shop.customers.create_index([("city", 1), ("since", -1)])
        shop.customers.replace_one({"_id": 7}, {"name": "renamed customer", "city": "Shenzhen"})
        _step("writes: a transaction, an index build, a replacement", t)
        time.sleep(1.1)
        logs.append(cron_run("increment 2"))

        cycle = re.search(r"cycle (\S+):", logs[0]).group(1)
        script = install / "restore_inc.py"
        text = script.read_text()
        for var, value in (("storage_url", "file://%s" % bucket), ("db_host", "127.0.0.1"), ("db_port", port),
                           ("db_user", ""), ("db_passwd", ""), ("db_name", "shop"),
                           ("last_circle_backup_dir_name", cycle), ("restore_to_db_name", "shop_restored"),
                           ("restore_local_temp_path", str(work / "restore") + "/")):
            text = re.sub(r"^%s = .*$" % var, "%s = %r" % (var, value), text, count=1, flags=re.M)
        script.write_text(text)
        t = time.perf_counter()
        restore = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        if restore.returncode != 0:
            print(restore.stdout + restore.stderr)
            return restore.returncode
        _step("restore_inc.py: full dump + 2 increments into shop_restored", t)

        t = time.perf_counter()
        raw = bson.CodecOptions(document_class=RawBSONDocument)
        same = True
        for coll in ("customers", "orders"):
            before = {d["_id"]: d.raw for d in client.shop.get_collection(coll, codec_options=raw).find()}
            after = {d["_id"]: d.raw for d in client.shop_restored.get_collection(coll, codec_options=raw).find()}
            same &= before == after
            print("    %-10s %6d documents in shop, %6d in shop_restored, byte-identical: %s"
                  % (coll, len(before), len(after), before == after))
        views = [c["name"] for c in client.shop_restored.list_collections(filter={"type": "view"})]
        indexes = sorted(i["name"] for i in client.shop_restored.customers.list_indexes())
        same &= indexes == sorted(i["name"] for i in client.shop.customers.list_indexes())
        print("    view restored: %s; customers indexes: %s" % (views, indexes))
        _step("compared shop_restored with shop", t)
        print()
        for line in logs:
            print("backup log:   " + line.replace("\n", "\n              "))
        print("restore log:  " + restore.stdout.strip().replace("\n", "\n              "))
        print("bucket:       %s (%s)" % (bucket, ", ".join(sorted(
            str(p.relative_to(bucket)) for p in bucket.rglob("*.tar.gz")))))
        print("scripts:      %s" % install)
        for args in (["list"], ["status", "--max-age", "1h"], ["verify", "--deep"]):
            r = subprocess.run([cli, *args, "--config", str(install / "config.properties")], capture_output=True,
                               text=True)
            same &= r.returncode == 0
            print("%-13s " % (args[0] + ":") + r.stdout.strip().replace("\n", "\n" + " " * 14))
        print("total:        %.1fs" % (time.perf_counter() - started))
        return 0 if same else 1
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        if "--keep" in sys.argv[1:]:
            print("demo folder kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
            print("demo folder removed (python -m mongo_oss_backup.demo --keep keeps it)")


if __name__ == "__main__":
    sys.exit(main())
