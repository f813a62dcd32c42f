"""tar.gz archives: entry names as the old scripts made them, interchange with GNU tar and Python's
tarfile, and refusal of archives that would write outside the target."""

import io
import os
import subprocess
import tarfile

import pytest

import mongo_oss_backup as mob


def make_tree(root):
    (root / "app").mkdir(parents=True)
    (root / "app" / "users.bson").write_bytes(os.urandom(200_000))
    (root / "app" / "users.metadata.json").write_text('{"indexes":[]}')
    long_name = "c" * 150 + ".bson"
    (root / "app" / long_name).write_bytes(b"long name")
    (root / "app" / "empty.bson").write_bytes(b"")
    (root / "app" / "sub").mkdir()
    return sorted(p.relative_to(root.parent).as_posix() for p in root.rglob("*") if p.is_file())


def tree_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_gnu_tar_reads_ours(tmp_path):
    src = tmp_path / "full_backup"
    files = make_tree(src)
    archive = tmp_path / "full_backup.tar.gz"
    stats = mob.create_archive(str(src), str(archive))
    assert stats["files"] == len(files)
    assert oct(archive.stat().st_mode & 0o777) == "0o600"
    listing = subprocess.run(["tar", "-tzf", str(archive)], check=True, capture_output=True, text=True).stdout
    names = [n.rstrip("/") for n in listing.split()]
    assert all(n == "full_backup" or n.startswith("full_backup/") for n in names)
    assert set(files) <= set(names)
    out = tmp_path / "gnu"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(out)], check=True)
    assert tree_bytes(out / "full_backup") == tree_bytes(src)
    assert (out / "full_backup" / "app" / "sub").is_dir()


def test_we_read_gnu_tar_and_tarfile(tmp_path):
    src = tmp_path / "oplog_20260101000000"
    make_tree(src)
    gnu = tmp_path / "gnu.tar.gz"
    subprocess.run(["tar", "-czf", str(gnu), "-C", str(tmp_path), src.name], check=True)
    assert mob.extract_archive(str(gnu), str(tmp_path / "x1")) == [src.name]
    assert tree_bytes(tmp_path / "x1" / src.name) == tree_bytes(src)
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT):
        py = tmp_path / ("py%d.tar.gz" % fmt)
        with tarfile.open(py, "w:gz", format=fmt) as t:
            if fmt == tarfile.USTAR_FORMAT:  # ustar cannot hold the 155-char name
                t.add(src / "app" / "users.bson", arcname=src.name + "/app/users.bson")
                continue
            t.add(src, arcname=src.name)
        dest = tmp_path / ("x%d" % fmt)
        mob.extract_archive(str(py), str(dest))
        if fmt != tarfile.USTAR_FORMAT:
            assert tree_bytes(dest / src.name) == tree_bytes(src)


def _evil(path, add):
    with tarfile.open(path, "w:gz") as t:
        add(t)


def _file(t, name, data=b"evil"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))


def _link(t, name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    t.addfile(info)


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink_out", "symlink_abs", "hardlink_out",
                                  "write_through_symlink", "symlink_inside", "link_chain"])
def test_tar_slip_is_refused(tmp_path, case):
    archive = tmp_path / "evil.tar.gz"
    adders = {
        "dotdot": lambda t: _file(t, "ok/../../escaped.txt"),
        "absolute": lambda t: _file(t, str(tmp_path / "escaped.txt")),
        "symlink_out": lambda t: _link(t, "ok/link", "../../.."),
        "symlink_abs": lambda t: _link(t, "ok/link", "/etc"),
        "hardlink_out": lambda t: _link(t, "ok/hard", "../escaped.txt", tarfile.LNKTYPE),
        "write_through_symlink": lambda t: (_link(t, "ok/l1", ".."), _link(t, "ok/l1/l2", ".."),
                                           _file(t, "ok/l1/l2/escaped.txt")),
        # Pointing inside, yet a later entry or a later extraction into the same folder could
        # write through it: a dump has no links at all.
        "symlink_inside": lambda t: _link(t, "ok/link", "data"),
        "link_chain": lambda t: (_link(t, "ok/l1", "."), _link(t, "ok/l2", "l1/../..")),
    }
    _evil(archive, adders[case])
    target = tmp_path / "target"
    with pytest.raises(mob.ArchiveError) as err:
        mob.extract_archive(str(archive), str(target))
    assert "refusing to extract" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "escaped.txt").exists()


def test_corrupt_archive_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage" * 10)
    with pytest.raises(mob.ArchiveError) as err:
        mob.extract_archive(str(bad), str(tmp_path / "o"))
    assert "is not a readable archive" in str(err.value)
