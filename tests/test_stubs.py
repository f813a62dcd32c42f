"""The .pyi stubs document exactly what the extension exports."""

import ast
from pathlib import Path

import mongo_oss_backup._core as core

STUB = Path(__file__).resolve().parent.parent / "python" / "mongo_oss_backup" / "_core.pyi"


def test_stub_names_match_the_extension():
    tree = ast.parse(STUB.read_text())
    stubbed = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    stubbed -= {"ObjectInfo", "Uploaded", "ArchiveStats"}  # typing helpers only
    exported = {n for n in dir(core) if not n.startswith("_")}
    assert stubbed == exported
    for cls in [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.endswith("Error")]:
        assert issubclass(getattr(core, cls.name), core.MongoOssBackupError)


def test_api_functions_are_typed_and_keyword_only():
    """The public functions take keyword-only options and return the dataclasses they announce."""
    import dataclasses
    import inspect
    import typing

    import mongo_oss_backup as mob
    for name in ["backup", "restore", "list_cycles", "status", "verify", "prune"]:
        fn = getattr(mob, name)
        params = inspect.signature(fn).parameters.values()
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params), name
        assert "config" in inspect.signature(fn).parameters
        hints = typing.get_type_hints(fn)
        assert dataclasses.is_dataclass(hints["return"]), name
        assert fn.__doc__


def test_exceptions_form_families_and_carry_context(tmp_path):
    import mongo_oss_backup as mob
    assert issubclass(mob.MongoAuthError, mob.MongoError) and issubclass(mob.MongoNotFoundError, mob.MongoError)
    assert issubclass(mob.StorageAuthError, mob.StorageError) and issubclass(mob.StorageNotFoundError, mob.StorageError)
    assert issubclass(mob.IntegrityError, mob.MongoOssBackupError)
    missing = tmp_path / "nothing.tar.gz"
    try:
        mob.extract_archive(str(missing), str(tmp_path / "out"))
    except mob.LocalIOError as e:
        assert e.context == {"path": str(missing)}
    else:
        raise AssertionError("no error")
