"""`python -m mongo_oss_backup.demo`: a real backup and restore on this machine, with embedded
defaults. It starts secantusdb (a MongoDB-compatible server) in a temporary folder on a free port,
fills a database, installs the compat scripts into a fake old installation whose config.properties
points at a folder bucket, runs start.py (full mode) as cron would, runs restore_full.py into a
second database, compares the two document by document, and says what it did and where.

Needs the demo extra: pip install 'mongo-oss-backup[demo]' (secantusdb and pymongo).
"""

import os
import re
import shutil
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
    server = subprocess.Popen([server_exe, "--host", "127.0.0.1", "--port", str(port), "--storage-path",
                               str(work / "server" / "data")], cwd=work / "server", stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        client = pymongo.MongoClient("127.0.0.1", port, directConnection=True, serverSelectionTimeoutMS=20000)
        client.admin.command("ping")
        _step("started secantusdb on 127.0.0.1:%d" % port, started)

        t = time.perf_counter()
        shop = client.shop
        shop.customers.insert_many([{"_id": i, "name": "customer %d" % i, "city": ["Hangzhou", "Beijing"][i % 2],
                                     "since": bson.Int64(1_600_000_000 + i)} for i in range(20_000)])
        shop.customers.create_index([("name", 1)], unique=True)
        shop.orders.insert_many([{"customer": i % 20_000, "total": bson.Decimal128("%d.99" % (i % 500)),
                                  "items": [{"sku": "A%d" % (i % 40), "qty": 1 + i % 3}]} for i in range(30_000)])
        shop.orders.create_index([("customer", 1), ("total", -1)])
        shop.command({"create": "big_spenders", "viewOn": "orders", "pipeline": [{"$match": {"total": {"$gt": 400}}}]})
        _step("wrote database shop: 50,000 documents, 2 collections, 1 view", t)

        install = work / "old-installation"
        install.mkdir()
        bucket = work / "bucket"
        (install / "config.properties").write_text(
            "db_host = 127.0.0.1\ndb_port = %d\ndb_user =\ndb_passwd =\ndb_name = shop\n"
            "db_backup_root_path = %s/\nmongo_shell_path =\nis_inc_backup = 0\nfull_backup_period = 7\n"
            "is_upload_to_oss = 1\nstorage_url = file://%s\n" % (port, work / "backups", bucket))
        t = time.perf_counter()
        subprocess.run([cli, "install-scripts", str(install)], check=True, stdout=subprocess.DEVNULL)
        _step("installed start.py, restore_full.py, restore_inc.py", t)

        t = time.perf_counter()
        backup = subprocess.run([sys.executable, str(install / "start.py")], capture_output=True, text=True)
        if backup.returncode != 0:
            print(backup.stdout + backup.stderr)
            return backup.returncode
        name = re.search(r"backup (\S+):", backup.stdout).group(1)
        _step("start.py: full backup %s" % name, t)

        script = install / "restore_full.py"
        text = script.read_text()
        for var, value in (("storage_url", "file://%s" % bucket), ("db_host", "127.0.0.1"), ("db_port", port),
                           ("db_user", ""), ("db_passwd", ""), ("db_name", "shop"),
                           ("last_circle_backup_dir_name", name),
                           ("restore_local_temp_path", str(work / "restore") + "/")):
            text = re.sub(r"^%s = .*$" % var, "%s = %r" % (var, value), text, count=1, flags=re.M)
        script.write_text(text)
        client.drop_database("shop_before")
        for coll in ("customers", "orders"):  # keep the original to compare with
            client.shop[coll].aggregate([{"$out": {"db": "shop_before", "coll": coll}}])
        client.drop_database("shop")
        t = time.perf_counter()
        restore = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        if restore.returncode != 0:
            print(restore.stdout + restore.stderr)
            return restore.returncode
        _step("dropped shop, restore_full.py restored it", t)

        t = time.perf_counter()
        raw = bson.CodecOptions(document_class=RawBSONDocument)
        same = True
        for coll in ("customers", "orders"):
            before = {d["_id"]: d.raw for d in client.shop_before.get_collection(coll, codec_options=raw).find()}
            after = {d["_id"]: d.raw for d in client.shop.get_collection(coll, codec_options=raw).find()}
            same &= before == after
            print("    %-10s %6d documents before, %6d after, byte-identical: %s"
                  % (coll, len(before), len(after), before == after))
        views = [c["name"] for c in client.shop.list_collections(filter={"type": "view"})]
        indexes = sorted(i["name"] for i in client.shop.customers.list_indexes())
        print("    view restored: %s; customers indexes: %s" % (views, indexes))
        _step("compared the restored database with the original", t)
        print()
        print("backup log:   " + backup.stdout.strip())
        print("restore log:  " + restore.stdout.strip().replace("\n", "\n              "))
        print("bucket:       %s" % bucket)
        print("scripts:      %s" % install)
        print("total:        %.1fs; incremental cycles arrive with the next releases" % (time.perf_counter() - started))
        return 0 if same else 1
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=20)


if __name__ == "__main__":
    sys.exit(main())
