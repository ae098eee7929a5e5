"""``import shells`` stays cheap: the SDK and the server load only when asked for."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("httpx", "fastapi", "sqlalchemy", "shells.sdk", "shells.control", "shells.runtime", "shells.api")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(out.split())


def test_import_shells_loads_neither_the_sdk_nor_the_server() -> None:
    loaded = _modules_after("import shells")
    assert not {m for m in loaded if m.startswith(HEAVY)}


def test_the_sdk_names_load_the_sdk_but_not_the_server() -> None:
    loaded = _modules_after("from shells import Shells, AsyncShells, Shell, AsyncShell, ShellsError")
    assert "shells.sdk" in loaded and "httpx" in loaded
    assert not {m for m in loaded if m.startswith(("fastapi", "sqlalchemy", "shells.control", "shells.api"))}


def test_the_cli_parser_does_not_load_the_sdk() -> None:
    loaded = _modules_after("from shells.cli.main import build_parser; build_parser()")
    assert "httpx" not in loaded and "shells.sdk" not in loaded


def test_every_exported_name_resolves_and_every_error_class_is_exported() -> None:
    import shells
    import shells.sdk
    from shells.domain.errors import ERRORS_BY_CODE

    assert all(getattr(shells, name) is not None for name in shells.__all__)
    assert all(getattr(shells.sdk, name) is not None for name in shells.sdk.__all__)
    missing = {cls.__name__ for cls in ERRORS_BY_CODE.values()} - set(shells.sdk.__all__)
    assert not missing, f"export these from shells.sdk too: {sorted(missing)}"
