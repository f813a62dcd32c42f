"""config.properties through the installed command line: `check-config` prints the effective settings
as JSON, hides secrets, and a bad file gives one line naming file, line and key, with exit code 2."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mongo_oss_backup as mob
from conftest import expect_ok, run_cli, write_config
from scripts_util import error_lines

REPO = Path(__file__).resolve().parent.parent

OLD_FILE = (
    "## 阿里云oss 连接配置\r\n"
    "endpoint= oss.aliyuncs.com\r\n"
    "accessKeyId = xxxxxxx\r\n"
    "accessKeySecret = p#ss=w0rd!\r\n"
    "bucket = db-backup\r\n"
    "db_host= localhost\r\n"
    "db_port= 27017\r\n"
    "db_user= testb\r\n"
    "db_passwd= testb\r\n"
    "db_name= chen\r\n"
    "db_backup_root_path= H:\\pythoncode\\temp\\back\\\r\n"
    "mongo_shell_path= /alidata1/mongodb-linux-x86_64-3.0.6/bin/\r\n"
    "is_inc_backup=1\r\n"
    "full_backup_period=7\r\n"
    "is_upload_to_oss= 1\r\n"
)


def test_old_file_unchanged(tmp_path):
    cfg = tmp_path / "config.properties"
    cfg.write_bytes(b"\xef\xbb\xbf" + OLD_FILE.encode("utf-8"))
    r = run_cli("check-config", "--config", str(cfg))
    expect_ok(r)
    out = json.loads(r.stdout)
    assert out["endpoint"] == "oss.aliyuncs.com"
    assert out["oss_region"] == "cn-hangzhou"
    assert out["accessKeySecret"] == "***" and out["db_passwd"] == "***"
    # Read literally; relative on this machine, so the folder of that name beside the config file.
    assert out["db_backup_root_path"] == str(tmp_path / "H:\\pythoncode\\temp\\back\\")
    assert 'db_backup_root_path "H:\\pythoncode\\temp\\back\\" is a Windows path' in r.stderr
    assert out["db_port"] == 27017 and out["is_inc_backup"] == 1 and out["full_backup_period"] == 7
    assert out["cycle_prefix"] == "mongodb_cycle_backup_titan_" and out["keep_cycles"] == 0
    assert "p#ss=w0rd!" not in r.stdout + r.stderr
    shown = json.loads(run_cli("check-config", "--config", str(cfg), "--show-secrets").stdout)
    assert shown["accessKeySecret"] == "p#ss=w0rd!" and shown["db_passwd"] == "testb"


def test_template_is_valid(tmp_path):
    cfg = tmp_path / "config.properties"
    template = (REPO / "config.properties").read_text()
    cfg.write_text(template)
    cfg.chmod(0o600)
    r = run_cli("check-config", "--config", str(cfg))
    assert r.returncode == 2 and error_lines(r.stderr) == [
        'error: %s:22: db_passwd: "change-me" is still the template\'s placeholder: write the MongoDB password '
        '(or set MONGO_OSS_DB_PASSWD)' % cfg], r.stderr
    cfg.write_text(template.replace("change-me", "pw").replace("your-access-key-id", "LTAI5tEx")
                   .replace("your-access-key-secret", "sk"))
    r = run_cli("check-config", "--config", str(cfg))
    expect_ok(r)
    assert r.stderr == ""
    assert set(json.loads(r.stdout)) >= {"endpoint", "storage_url", "keep_cycles", "log_level"}


@pytest.mark.parametrize("line,expected", [
    ("db_port=27o17", 'db_port: "27o17" is not a port number'),
    ("is_upload_to_oss=2", 'is_upload_to_oss: "2" is not 0 or 1'),
    ("storage_url=gopher://x", 'storage_url: "gopher://x" has an unknown scheme (use file://, s3:// or oss://)'),
])
def test_bad_value_one_line_exit_2(tmp_path, line, expected):
    cfg = tmp_path / "config.properties"
    key = line.split("=")[0]
    body = [b for b in OLD_FILE.replace("\r\n", "\n").splitlines() if not b.replace(" ", "").startswith(key + "=")]
    body.insert(6, line)  # line 7 of the file
    cfg.write_text("\n".join(body) + "\n")
    r = run_cli("check-config", "--config", str(cfg))
    assert r.returncode == 2
    assert r.stdout == ""
    assert error_lines(r.stderr) == ["error: %s:7: %s" % (cfg, expected)] and len(r.stderr.splitlines()) == 1


def test_secret_from_environment_and_unknown_key_warning(tmp_path):
    cfg = tmp_path / "config.properties"
    text = OLD_FILE.replace("accessKeySecret = p#ss=w0rd!\r\n", "").replace("db_passwd= testb\r\n", "")
    cfg.write_text(text + "colour = blue\n")
    r = run_cli("check-config", "--config", str(cfg))
    assert r.returncode == 2 and "accessKeySecret is required" in r.stderr
    env = {"MONGO_OSS_ACCESS_KEY_SECRET": "env-secret-1", "MONGO_OSS_DB_PASSWD": "env-pw-2"}
    r = run_cli("check-config", "--config", str(cfg), "--show-secrets", env=env)
    expect_ok(r)
    assert 'unknown key "colour" ignored' in r.stderr
    out = json.loads(r.stdout)
    assert out["accessKeySecret"] == "env-secret-1" and out["db_passwd"] == "env-pw-2"


def test_python_m_and_help(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mongo_oss_backup", "--help"], capture_output=True, text=True)
    expect_ok(r)
    assert "check-config" in r.stdout and "Exit codes" in r.stdout
    r = run_cli("no-such-command")
    assert r.returncode == 2


def test_python_api_check_config(tmp_path):
    cfg = tmp_path / "config.properties"
    cfg.write_text(OLD_FILE)
    cfg.chmod(0o600)
    settings, warnings = mob.check_config(str(cfg))
    assert settings["db_name"] == "chen"
    assert len(warnings) == 1 and "is a Windows path" in warnings[0]
    cfg.write_text(OLD_FILE.replace("db_port= 27017", "db_port= x"))
    with pytest.raises(mob.ConfigError) as err:
        mob.check_config(str(cfg))
    assert str(err.value).endswith(':7: db_port: "x" is not a port number')
    assert isinstance(err.value, mob.MongoOssBackupError)


def test_config_readable_by_others_is_warned(tmp_path):
    cfg = tmp_path / "config.properties"
    cfg.write_text(OLD_FILE)
    cfg.chmod(0o644)
    r = run_cli("check-config", "--config", str(cfg))
    expect_ok(r)
    assert "warning: %s has mode 0644: it holds the secrets, make it readable by its owner only (chmod 600)\n" % cfg \
        in r.stderr


def test_check_config_masks_a_password_inside_a_uri(tmp_path):
    cfg = write_config(tmp_path, db_host="mongodb://backup:Uri-Secr3t@db1:27017,db2/?replicaSet=rs0",
                       is_upload_to_oss="0")
    r = run_cli("check-config", "--config", str(cfg))
    expect_ok(r)
    assert json.loads(r.stdout)["db_host"] == "mongodb://backup:***@db1:27017,db2/?replicaSet=rs0"
    assert "Uri-Secr3t" not in r.stdout + r.stderr


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_old_chinese_file_in_its_encodings(tmp_path, encoding):
    """The old template is Chinese; saved by a Windows editor it is GBK. Every one reads the same."""
    cfg = tmp_path / "config.properties"
    cfg.write_bytes(OLD_FILE.replace("db_user= testb", "db_user= 备份").encode(encoding))
    cfg.chmod(0o600)
    r = expect_ok(run_cli("check-config", "--config", str(cfg)))
    out = json.loads(r.stdout)
    assert out["db_user"] == "备份" and out["db_name"] == "chen" and out["db_port"] == 27017


def test_a_file_in_no_known_encoding_names_the_line(tmp_path):
    cfg = tmp_path / "config.properties"
    cfg.write_bytes(OLD_FILE.encode("utf-8").replace(b"bucket = db-backup", b"bucket = db-\xff\xfe\xff"))
    cfg.chmod(0o600)
    r = run_cli("check-config", "--config", str(cfg))
    assert r.returncode == 2
    assert "config.properties:5: neither UTF-8 nor GBK text" in r.stderr, r.stderr


def base_config(tmp_path, **extra):
    from conftest import write_config
    values = dict(endpoint="oss-cn-hangzhou.aliyuncs.com", bucket="db-backup", accessKeyId="LTAI5tEx",
                  accessKeySecret="sk")
    values.update(extra)
    return write_config(tmp_path, **values)


def test_messages_name_the_cause(tmp_path):
    # A key in the wrong case: the missing key's error points at the line that has it.
    cfg = base_config(tmp_path / "a", is_inc_backup=None, IS_INC_BACKUP="1")
    r = run_cli("check-config", "--config", str(cfg))
    assert r.returncode == 2 and len(error_lines(r.stderr)) == 1
    assert 'missing key is_inc_backup; line' in r.stderr and 'has "IS_INC_BACKUP" (keys are case-sensitive' in r.stderr
    # A misspelt optional key: a warning with the suggestion.
    cfg = base_config(tmp_path / "b", keep_cycle="3")
    r = expect_ok(run_cli("check-config", "--config", str(cfg)))
    assert 'unknown key "keep_cycle" ignored; did you mean keep_cycles?' in r.stderr
    # Placeholders left from the template, with upload on.
    cfg = base_config(tmp_path / "c", accessKeyId="your-access-key-id")
    r = run_cli("check-config", "--config", str(cfg))
    assert r.returncode == 2 and 'accessKeyId: "your-access-key-id" is still the template\'s placeholder' in r.stderr
    cfg = base_config(tmp_path / "c2", accessKeySecret="your-access-key-secret")
    r = run_cli("backup", "--config", str(cfg))
    assert r.returncode == 2 and "accessKeySecret" in r.stderr and "placeholder" in r.stderr
    # An empty bucket says so, with its line.
    cfg = base_config(tmp_path / "d", bucket="")
    r = run_cli("check-config", "--config", str(cfg))
    assert r.returncode == 2 and re.search(r'config.properties:\d+: bucket: "" is empty: name the bucket', r.stderr)
    # A cycle of 0 days.
    cfg = base_config(tmp_path / "e", is_inc_backup="1", full_backup_period="0")
    r = expect_ok(run_cli("check-config", "--config", str(cfg)))
    assert "full_backup_period = 0: every run starts a new cycle with a full dump" in r.stderr


def test_usage_messages(tmp_path):
    cfg = base_config(tmp_path, is_upload_to_oss="0")
    r = run_cli("restore", "--config", str(cfg))
    assert r.returncode == 2 and "restore needs --cycle NAME (an incremental cycle) or --full NAME" in r.stderr
    r = run_cli("restore", "--config", str(cfg), "--cycle", "x", "--full", "y", "--json")
    assert r.returncode == 2
    assert json.loads(r.stdout)["error"]["kind"] == "usage" and "--full" in json.loads(r.stdout)["error"]["message"]
    r = run_cli("prune", "--config", str(cfg), "--keep", "0")
    assert r.returncode == 2 and "0 means keep every cycle" in r.stderr
