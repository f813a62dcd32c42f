#!/usr/bin/env python3
"""What the CRC32C on every S3 PutObject and part costs us: the same file uploaded in parts to the
S3 test server (tests/s3_server.py, which verifies each checksum) with the default `checksum=crc32c`
and with `checksum=none`, alternating, in the same run. Our CPU seconds (user + sys of this process,
where the engine runs) per GB and the wall time of each upload; the ratio is crc32c against none.
The test server is Python: wall times are mostly its own, CPU seconds are ours.

Usage: python bench/bench_s3_upload.py [--size-mb 256] [--rounds 3]
Needs: pip install '.[test]'.
"""

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import boto3
    import mongo_oss_backup as mob

    work = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    port = free_port()
    server = subprocess.Popen([sys.executable, str(REPO / "tests" / "s3_server.py"), str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        endpoint = "http://127.0.0.1:%d" % port
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("the S3 test server did not start")
                time.sleep(0.1)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="mk",
                          aws_secret_access_key="ms")
        s3.create_bucket(Bucket="bench-upload")
        data = work / "data.bin"
        with open(data, "wb") as f:
            for _ in range(args.size_mb):
                f.write(os.urandom(1 << 20))
        gb = args.size_mb * (1 << 20) / 1e9
        stores = {}
        for name, query in (("crc32c", ""), ("none", "&checksum=none")):
            cfg = work / ("%s.properties" % name)
            cfg.write_text("db_host=127.0.0.1\ndb_name=app\nis_inc_backup=0\nis_upload_to_oss=1\n"
                           "db_backup_root_path=%s/\naccessKeyId=mk\naccessKeySecret=ms\nupload_part_size_mb=8\n"
                           "storage_url=s3://bench-upload?endpoint=%s&region=us-east-1%s\n" % (work, endpoint, query))
            stores[name] = mob.Storage(config=str(cfg))
        cpu = {name: [] for name in stores}
        wall = {name: [] for name in stores}
        for rnd in range(args.rounds):
            for name, store in stores.items():
                before, started = resource.getrusage(resource.RUSAGE_SELF), time.time()
                store.put_file(str(data), "k-%s-%d" % (name, rnd))
                after = resource.getrusage(resource.RUSAGE_SELF)
                wall[name].append(time.time() - started)
                cpu[name].append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        print("%d MiB uploaded in 8 MiB parts, %d rounds (medians)" % (args.size_mb, args.rounds))
        for name in stores:
            print("  checksum=%-6s  our CPU %.3f s = %.2f CPU-s/GB   wall %.2f s"
                  % (name, statistics.median(cpu[name]), statistics.median(cpu[name]) / gb,
                     statistics.median(wall[name])))
        print("  crc32c / none: CPU %.2fx, wall %.2fx"
              % (statistics.median(cpu["crc32c"]) / statistics.median(cpu["none"]),
                 statistics.median(wall["crc32c"]) / statistics.median(wall["none"])))
    finally:
        os.killpg(server.pid, 9)
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
