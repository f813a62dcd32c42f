"""The .pyi stubs document exactly what the extension exports."""

import ast
from pathlib import Path

import mongo_oss_backup._core as core

STUB = Path(__file__).resolve().parent.parent / "python" / "mongo_oss_backup" / "_core.pyi"


def test_stub_names_match_the_extension():
    tree = ast.parse(STUB.read_text())
    stubbed = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    stubbed -= {"ObjectInfo", "Uploaded", "BackupReport", "ArchiveStats"}  # typing helpers only
    exported = {n for n in dir(core) if not n.startswith("_")}
    assert stubbed == exported
    for cls in [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.endswith("Error")]:
        assert issubclass(getattr(core, cls.name), core.MongoOssBackupError)
