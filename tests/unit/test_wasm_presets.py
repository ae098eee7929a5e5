"""What a wasm shell runs and refuses (pure rules), and the host-side files API on a real directory
holding a guest's symlinks."""

from __future__ import annotations

from pathlib import Path

import pytest

from shells.domain.errors import CommandNotFound, FeatureUnavailable, FileNotFound, InvalidPath
from shells.domain.isolation import Language
from shells.domain.wasm_presets import check_language, program_for, wasm_offers
from shells.runtime.wasm import workspace_fs


def test_argv0_names_an_interpreter_or_a_wasm_file() -> None:
    assert [program_for(p) for p in ("python", "python3", "node", "qjs")] == [
        "python",
        "python",
        "qjs",
        "qjs",
    ]
    assert program_for("build/app.wasm") is None
    with pytest.raises(CommandNotFound, match="container"):
        program_for("/bin/sh")
    with pytest.raises(CommandNotFound, match="python"):
        program_for("ls")


def test_bash_is_refused_and_compiled_languages_need_the_build_template() -> None:
    for language in (Language.PYTHON, Language.NODE, Language.RUST, Language.GO):
        check_language(language)
    with pytest.raises(FeatureUnavailable) as err:
        check_language(Language.BASH)
    assert err.value.details["runtimes"] == ["container", "microvm"]
    offers = {o.language: o for o in wasm_offers(None)}
    assert set(offers) == set(Language)
    assert offers[Language.NODE].available and "not Node.js" in offers[Language.NODE].notes
    assert not offers[Language.BASH].available
    assert not offers[Language.RUST].available and "wasm-build:1" in offers[Language.RUST].notes
    built = {o.language: o for o in wasm_offers({"rustc": "1.85.1", "go": "1.24.4"})}
    assert (built[Language.RUST].available, built[Language.RUST].version) == (True, "1.85.1")
    assert (built[Language.GO].available, built[Language.GO].version) == (True, "1.24.4")


def test_the_files_api_never_follows_a_guest_symlink(tmp_path: Path) -> None:
    ws, secret = tmp_path / "ws", tmp_path / "secret"
    ws.mkdir()
    secret.mkdir()
    (secret / "key").write_text("host secret")
    (ws / "file-link").symlink_to("../secret/key")
    (ws / "dir-link").symlink_to("../secret")
    with pytest.raises(InvalidPath):
        list(workspace_fs.read_chunks(ws, "/workspace/file-link", 1 << 20))
    with pytest.raises(InvalidPath):
        list(workspace_fs.read_chunks(ws, "/workspace/dir-link/key", 1 << 20))
    with pytest.raises(InvalidPath):
        workspace_fs.write_file(ws, "/workspace/dir-link/new", iter([b"x"]), 0o644)
    with pytest.raises(InvalidPath):
        workspace_fs.mkdir(ws, "/workspace/dir-link/sub")
    with pytest.raises(InvalidPath):
        workspace_fs.list_dir(ws, "/workspace/dir-link")
    with pytest.raises(InvalidPath):
        workspace_fs.stat_path(ws, "/etc/passwd")
    entry = workspace_fs.stat_path(ws, "/workspace/file-link")
    assert (entry.kind, entry.link_target) == ("symlink", "../secret/key")
    workspace_fs.write_file(ws, "/workspace/file-link", iter([b"replaced"]), 0o600)
    assert (ws / "file-link").read_bytes() == b"replaced" and not (ws / "file-link").is_symlink()
    workspace_fs.remove(ws, "/workspace/dir-link", recursive=True)
    assert [p.name for p in secret.iterdir()] == ["key"] and (secret / "key").read_text() == "host secret"
    with pytest.raises(FileNotFound):
        workspace_fs.stat_path(ws, "/workspace/dir-link")
