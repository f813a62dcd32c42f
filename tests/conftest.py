"""Test harness: every server a test needs is started here, on a free loopback port, in a fresh
working directory, and stopped afterwards by its pid.

- `oss_server`: tests/oss_server/server.py, the OSS REST API checked with the official SDK's signer.
- `moto_s3`: the moto server (third-party S3 implementation).
Helpers write config.properties files and run the command line.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

import pytest

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
FIXTURES = SHARED / "fixtures" / "mongo-tools"
OSS_AK = "test-ak"
OSS_SK = "test-sk-Very$ecret#1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A child process serving on 127.0.0.1:port, stopped by pid."""

    def __init__(self, name: str, argv: List[str], port: int, workdir: Path, env: Optional[dict] = None):
        self.name, self.argv, self.port, self.workdir = name, argv, port, workdir
        self.env = dict(os.environ, **(env or {}))
        for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
            self.env.pop(var, None)
        self.proc: Optional[subprocess.Popen] = None
        self.log = workdir / ("%s.log" % name)

    def start(self, ready, timeout: float = 20.0) -> "ServerProcess":
        self.workdir.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(self.argv, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT,
                                     env=self.env, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s:\n%s" % (self.name, self.proc.returncode, self.log.read_text()))
            if ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("%s did not start within %ss:\n%s" % (self.name, timeout, self.log.read_text()))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class OssServer:
    """Handle on a running OSS test server."""

    def __init__(self, proc: ServerProcess, root: Path):
        self.proc, self.root = proc, root
        self.port = proc.port
        self.endpoint = "http://localhost:%d" % self.port
        self.proxy = "http://127.0.0.1:%d" % self.port

    def admin(self, path: str, payload: Optional[dict] = None) -> dict:
        data = json.dumps(payload or {}).encode()
        req = urllib.request.Request("http://127.0.0.1:%d/__admin/%s" % (self.port, path), data=data,
                                     method="GET" if payload is None else "POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=10) as r:
            return json.loads(r.read() or b"{}")

    def add_bucket(self, name: str) -> str:
        self.admin("buckets", {"name": name})
        return name

    def fault(self, mode: str, count: int = 1, **extra) -> None:
        self.admin("faults", dict(mode=mode, count=count, **extra))

    def stats(self) -> dict:
        return self.admin("stats")

    def object_bytes(self, bucket: str, key: str) -> bytes:
        from urllib.parse import quote
        return (self.root / bucket / "objects" / quote(key, safe="")).read_bytes()

    def sdk_client(self, signature_version: str = "v4", secret: str = OSS_SK):
        """The official SDK as a client, virtual-hosted through the server acting as proxy."""
        import alibabacloud_oss_v2 as oss

        cfg = oss.config.load_default()
        cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(OSS_AK, secret)
        cfg.region = "cn-hangzhou"
        cfg.endpoint = self.endpoint
        cfg.signature_version = signature_version
        cfg.proxy_host = {"http": self.proxy}
        cfg.retry_max_attempts = 1
        return oss.Client(cfg)


def start_oss_server(work: Path) -> OssServer:
    """The OSS test server on a free port, its objects under work/data (stop it with .proc.stop())."""
    port = free_port()
    argv = [sys.executable, str(HERE / "oss_server" / "server.py"), "--port", str(port), "--root",
            str(work / "data"), "--access-key-id", OSS_AK, "--region", "cn-hangzhou"]
    proc = ServerProcess("oss_server", argv, port, work, env={"OSS_SERVER_SECRET": OSS_SK})
    proc.start(lambda: port_open(port))
    return OssServer(proc, work / "data")


@pytest.fixture(scope="session")
def oss_server(tmp_path_factory) -> OssServer:
    server = start_oss_server(tmp_path_factory.mktemp("oss-server"))
    try:
        yield server
    finally:
        server.proc.stop()


@pytest.fixture
def via_proxy(monkeypatch, oss_server):
    """Virtual-hosted requests to <bucket>.localhost reach the test server as our HTTP proxy."""
    monkeypatch.setenv("HTTP_PROXY", oss_server.proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory) -> str:
    """moto's S3 behind S3's upload integrity rules (tests/s3_server.py): checksums verified, a
    bucket with default Object Lock retention refuses uploads and parts without one."""
    work = tmp_path_factory.mktemp("moto")
    port = free_port()
    proc = ServerProcess("s3_server", [sys.executable, str(HERE / "s3_server.py"), str(port)], port, work)
    proc.start(lambda: port_open(port), timeout=60)
    try:
        yield "http://127.0.0.1:%d" % port
    finally:
        proc.stop()


def s3_rule_stats(endpoint: str) -> dict:
    """What tests/s3_server.py counted per bucket: puts, parts, verified, bad_digest, refused_without_checksum."""
    with urllib.request.urlopen(endpoint + "/_s3_rules/stats", timeout=30) as r:
        return json.loads(r.read())


BASE_CONFIG = {
    "db_host": "127.0.0.1",
    "db_port": "27017",
    "db_user": "",
    "db_passwd": "",
    "db_name": "app",
    "is_inc_backup": "0",
    "full_backup_period": "7",
    "is_upload_to_oss": "1",
    "upload_concurrency": "5",
}


def write_config(directory: Path, **values: str) -> Path:
    """Writes directory/config.properties from BASE_CONFIG plus `values` (None removes a key)."""
    directory.mkdir(parents=True, exist_ok=True)
    merged: Dict[str, Optional[str]] = dict(BASE_CONFIG)
    merged.setdefault("db_backup_root_path", str(directory / "work") + "/")
    merged.update(values)
    if str(merged.get("storage_url") or "").startswith("file://"):
        # Tests point at folders that the first backup creates; refusing a missing one is tested
        # on its own (test_folder_bucket_safety).
        merged.setdefault("create_bucket_folder", "1")
    lines = ["%s = %s" % (k, v) for k, v in merged.items() if v is not None]
    path = directory / "config.properties"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def oss_config(directory: Path, server: OssServer, bucket: str, **values: str) -> Path:
    merged = dict(endpoint=server.endpoint, bucket=bucket, accessKeyId=OSS_AK, accessKeySecret=OSS_SK,
                  oss_region="cn-hangzhou")
    merged.update(values)
    return write_config(directory, **merged)


def run_cli(*args: str, env: Optional[dict] = None, cwd: Optional[Path] = None, timeout: float = 300):
    """Runs the installed `mongo-oss-backup` console script."""
    exe = shutil.which("mongo-oss-backup")
    assert exe, "mongo-oss-backup is not on PATH: pip install . first"
    r = subprocess.run([exe, *args], capture_output=True, text=True, env=dict(os.environ, **(env or {})),
                       cwd=cwd, timeout=timeout)
    r.cwd = cwd or os.getcwd()
    return r


def expect_ok(r: subprocess.CompletedProcess, *codes: int) -> subprocess.CompletedProcess:
    """Asserts that a command exited 0 (or one of `codes`); on failure the message shows the command,
    its working directory, exit code, stdout and stderr."""
    if r.returncode not in (codes or (0,)):
        args = r.args if isinstance(r.args, str) else " ".join(str(a) for a in r.args)
        raise AssertionError("exit %d from: %s\ncwd: %s\n--- stdout\n%s\n--- stderr\n%s" % (
            r.returncode, args, getattr(r, "cwd", "?"), r.stdout, r.stderr))
    return r


def run_ok(*args: str, **kw) -> subprocess.CompletedProcess:
    """run_cli that must succeed."""
    return expect_ok(run_cli(*args, **kw))


# -- MongoDB: secantusdb --------------------------------------------------------------------------

ROOT_USER, ROOT_PW = "root", "root-pw"
BACKUP_USER, BACKUP_PW = "backup_user", "b@ck#up=pw"
RESTORE_USER, RESTORE_PW = "restore_user", "rest0re-pw"
NOBODY_USER, NOBODY_PW = "nobody", "nobody-pw"
RESTORE_DBS = ("restored", "fixtures", "app")


class Mongo:
    """Handle on a running secantusdb."""

    def __init__(self, proc: ServerProcess, auth: bool):
        self.proc, self.port, self.auth = proc, proc.port, auth

    def client(self, user: Optional[str] = ROOT_USER, password: Optional[str] = ROOT_PW, **kw):
        import pymongo

        creds = dict(username=user, password=password, authSource="admin") if self.auth and user else {}
        return pymongo.MongoClient("127.0.0.1", self.port, directConnection=True, serverSelectionTimeoutMS=10000,
                                   **creds, **kw)

    def stop(self) -> None:
        self.proc.stop()


def _ping(port: int) -> bool:
    import pymongo

    try:
        c = pymongo.MongoClient("127.0.0.1", port, directConnection=True, serverSelectionTimeoutMS=300)
        c.admin.command("ping")
        c.close()
        return True
    except Exception:
        return False


def start_secantus(workdir: Path, auth: bool = False, oplog_max_entries: int = 10000,
                   storage: Optional[Path] = None) -> Mongo:
    exe = shutil.which("secantusd-py")
    if exe is None:
        pytest.fail("secantusd-py is not installed (pip install secantusdb)")
    port = free_port()
    storage = storage or (workdir / "data")
    argv = [exe, "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(storage),
            "--oplog-max-entries", str(oplog_max_entries)]
    if auth:
        argv.append("--auth")
    proc = ServerProcess("secantus", argv, port, workdir)
    proc.start(lambda: _ping(port), timeout=30)
    return Mongo(proc, auth)


@pytest.fixture(scope="session")
def mongo(tmp_path_factory) -> Mongo:
    """secantusdb without authentication."""
    server = start_secantus(tmp_path_factory.mktemp("secantus"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mongo_auth(tmp_path_factory) -> Mongo:
    """secantusdb with --auth and the users of a real deployment: a backup user (role backup), a
    restore user (readWrite + dbAdmin on the restore targets only) and a user with no privileges."""
    work = tmp_path_factory.mktemp("secantus-auth")
    setup = start_secantus(work)
    admin = setup.client(user=None).admin
    admin.command("createUser", ROOT_USER, pwd=ROOT_PW, roles=["root"])
    admin.command("createUser", BACKUP_USER, pwd=BACKUP_PW, roles=["backup"])
    roles = [{"role": r, "db": db} for db in RESTORE_DBS for r in ("readWrite", "dbAdmin")]
    admin.command("createUser", RESTORE_USER, pwd=RESTORE_PW, roles=roles)
    admin.command("createUser", NOBODY_USER, pwd=NOBODY_PW, roles=[])
    setup.stop()
    server = start_secantus(work, auth=True, storage=work / "data")
    try:
        yield server
    finally:
        server.stop()
