"""Template names, the spec format, content identity, the build plan and the run-code scripts."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shells.domain import run_recipes
from shells.domain import templates as t
from shells.domain.errors import InvalidTemplateName, InvalidTemplateSpec
from shells.domain.isolation import PRESET_TEMPLATES, Language
from shells.runtime.templates.catalog import BASE, builtins

FULL = """
name = "webapp:2"
parent = "python:1"
workdir = "/srv/app"
commands = ["echo built > /etc/built-by-spec", "useradd -m app"]

[apt]
packages = ["sqlite3", "jq"]

[pip]
packages = ["requests==2.32.3"]

[npm]
packages = ["typescript"]

[[files]]
path = "/etc/app/config.toml"
content = "debug = false\\n"

[[files]]
path = "/usr/local/bin/hello"
content = "#!/bin/sh\\necho hello\\n"
mode = "755"

[env]
APP_ENV = "production"

[versions]
sqlite = "sqlite3 --version | cut -d' ' -f1"
"""


def spec_error(text: str) -> InvalidTemplateSpec:
    with pytest.raises(InvalidTemplateSpec) as info:
        t.parse_spec(text)
    return info.value


def test_a_full_spec_parses_into_every_field() -> None:
    spec = t.parse_spec(FULL)
    assert (spec.name, spec.parent, spec.workdir) == ("webapp:2", "python:1", "/srv/app")
    assert spec.apt == ("sqlite3", "jq") and spec.pip == ("requests==2.32.3",) and spec.npm == ("typescript",)
    assert spec.files == (
        t.FileSpec("/etc/app/config.toml", "debug = false\n", 0o644),
        t.FileSpec("/usr/local/bin/hello", "#!/bin/sh\necho hello\n", 0o755),
    )
    assert spec.commands == ("echo built > /etc/built-by-spec", "useradd -m app")
    assert spec.env == {"APP_ENV": "production"}
    assert spec.versions == {"sqlite": "sqlite3 --version | cut -d' ' -f1"}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('name = "a:1"\nparent = "base:1"\ncolour = "red"', "colour"),
        ('name = "a:1"\nparent = "base:1"\n[apt]\npakages = ["x"]', "apt.pakages"),
        ('name = "a:1"\nparent = "base:1"\n[[files]]\npath = "/etc/x"\nsorce = "y"', "files[0].sorce"),
        ('name = "a:1"\nparent = "base:1"\n[[files]]\npath = "/etc/x"', "files[0].content"),
        ('parent = "base:1"', "name"),
        ('name = "a:1"', "parent"),
        ('name = "a:1"\nparent = "base:1"\ncommands = "make"', "commands"),
        ('name = "a:1"\nparent = "base:1"\ncommands = ["ok", ""]', "commands[1]"),
        ('name = "a:1"\nparent = "base:1"\nworkdir = "app"', "workdir"),
        ('name = "a:1"\nparent = "base:1"\n[env]\n1BAD = "x"', "env.1BAD"),
        ('name = "a:1"\nparent = "base:1"\n[versions]\nBad = "x --version"', "versions.Bad"),
        ('name = "a:1"\nparent = "base:1"\napt = ["x"]', "apt"),
        ('name = "a:1"\nparent = "base:1"\n[apt]\npackages = ["ok", "-o Foo=1"]', "apt.packages[1]"),
        ('name = "a:1"\nparent = "base:1"\n[apt]\npackages = ["Not A Package"]', "apt.packages[0]"),
        ('name = "a:1"\nparent = "base:1"\n[pip]\npackages = ["--index-url=http://evil"]', "pip.packages[0]"),
        ('name = "a:1"\nparent = "base:1"\n[npm]\npackages = ["a b"]', "npm.packages[0]"),
        ('name = "a:1"\nparent = "base:1"\n[[files]]\npath = "etc/x"\ncontent = ""', "files[0].path"),
        ('name = "a:1"\nparent = "base:1"\n[[files]]\npath = "/etc/../x"\ncontent = ""', "files[0].path"),
        ('name = "a:1"\nparent = "base:1"\n[[files]]\npath = "/proc/x"\ncontent = ""', "files[0].path"),
        ('name = "a:1"\nparent = "base:1"\n[[files]]\npath = "/tmp/x"\ncontent = ""', "files[0].path"),
        (
            'name = "a:1"\nparent = "base:1"\n[[files]]\npath = "/x"\ncontent = ""\nmode = 99999',
            "files[0].mode",
        ),
        (
            'name = "a:1"\nparent = "base:1"\n[[files]]\npath = "/x"\ncontent = ""\nmode = "rwx"',
            "files[0].mode",
        ),
        ("name = ", ""),
    ],
)
def test_every_spec_problem_names_the_key_to_fix(text: str, key: str) -> None:
    err = spec_error(text)
    assert err.code == "invalid_template_spec"
    assert err.details["key"] == key
    if key:
        assert f"'{key}'" in err.message


def test_an_unknown_key_error_lists_the_keys_allowed_there() -> None:
    err = spec_error('name = "a:1"\nparent = "base:1"\n[apt]\npakages = ["x"]')
    assert "Keys allowed at [apt]: packages." in err.message


def test_file_modes_accept_toml_octal_and_strings() -> None:
    for mode, expected in (("0o750", 0o750), ("0755", 0o755), ("640", 0o640)):
        spec = t.parse_spec(
            f'name = "a:1"\nparent = "base:1"\n[[files]]\npath = "/x"\ncontent = ""\nmode = "{mode}"'
        )
        assert spec.files[0].mode == expected
    spec = t.parse_spec(
        'name = "a:1"\nparent = "base:1"\n[[files]]\npath = "/x"\ncontent = ""\nmode = 0o4755'
    )
    assert spec.files[0].mode == 0o4755


@pytest.mark.parametrize(
    "bad", ["myenv", "MyEnv:1", "my env:1", "a:b:c", ":1", "a:", "-a:1", "a:" + "x" * 33, 7]
)
def test_new_template_names_need_a_legal_name_and_a_tag(bad: object) -> None:
    with pytest.raises(InvalidTemplateName) as info:
        t.parse_template_name(bad)
    assert info.value.code == "invalid_template_name"


def test_a_name_without_a_tag_is_refused_with_an_example_that_has_one() -> None:
    with pytest.raises(InvalidTemplateName, match=r"no tag; new templates need one, e\.g\. 'myenv:1'"):
        t.parse_template_name("myenv")


def test_a_spec_name_needs_a_tag_but_its_parent_may_omit_it() -> None:
    with pytest.raises(InvalidTemplateName):
        t.parse_spec('name = "webapp"\nparent = "base:1"')
    assert t.parse_spec('name = "web.app_2-x:v1.0"\nparent = "python"').parent == "python"
    assert t.split_template_name("python:1") == ("python", "1")
    assert t.split_template_name("python") == ("python", None)


def test_numeric_tags_sort_as_numbers_after_the_others() -> None:
    names = ["app:9", "app:10", "app:beta", "app:2"]
    assert max(names, key=t.tag_order) == "app:10"
    assert sorted(names, key=t.tag_order) == ["app:beta", "app:2", "app:9", "app:10"]


def test_identity_follows_content_and_parent_but_not_names_or_apt_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = t.parse_spec(FULL)
    same = t.parse_spec(FULL.replace("webapp:2", "other:7").replace('"sqlite3", "jq"', '"jq", "sqlite3"'))
    ident = t.content_identity(base, "p" * 64)
    assert t.content_identity(same, "p" * 64) == ident
    assert t.content_identity(t.parse_spec(FULL.replace('"python:1"', '"python"')), "p" * 64) == ident
    assert t.content_identity(base, "q" * 64) != ident
    assert t.content_identity(t.parse_spec(FULL.replace("useradd -m app", "useradd app")), "p" * 64) != ident
    assert t.content_identity(t.parse_spec(FULL.replace("debug = false", "debug = true")), "p" * 64) != ident
    monkeypatch.setattr(t, "BUILD_FORMAT_VERSION", t.BUILD_FORMAT_VERSION + 1)
    assert t.content_identity(base, "p" * 64) != ident


def test_the_plan_runs_packages_then_files_then_commands_then_versions() -> None:
    steps = t.plan_steps(t.parse_spec(FULL))
    assert [s.name for s in steps] == [
        "apt install sqlite3 jq",
        "pip install requests==2.32.3",
        "npm install -g typescript",
        "write 2 files",
        "echo built > /etc/built-by-spec",
        "useradd -m app",
        "record versions: sqlite",
    ]
    apt, pip, npm, files, cmd, _, versions = steps
    assert (
        isinstance(apt, t.RunStep)
        and apt.argv[:3] == ("bash", "-e", "-c")
        and apt.argv[-2:] == ("sqlite3", "jq")
    )
    assert (
        isinstance(pip, t.RunStep)
        and "--break-system-packages" in pip.argv
        and pip.argv[-1] == "requests==2.32.3"
    )
    assert isinstance(npm, t.RunStep) and npm.argv[-1] == "typescript"
    assert isinstance(files, t.FilesStep) and len(files.files) == 2
    assert isinstance(cmd, t.RunStep) and cmd.argv == (
        "bash",
        "-e",
        "-o",
        "pipefail",
        "-c",
        "echo built > /etc/built-by-spec",
    )
    assert isinstance(versions, t.VersionsStep) and versions.commands == {
        "sqlite": "sqlite3 --version | cut -d' ' -f1"
    }
    assert t.plan_steps(t.parse_spec('name = "a:1"\nparent = "base:1"')) == []


def test_a_long_or_multiline_command_gets_a_short_step_name() -> None:
    steps = t.plan_steps(
        t.parse_spec('name = "a:1"\nparent = "base:1"\ncommands = ["""set -x\nmake all\n"""]')
    )
    assert steps[0].name == "set -x…"


def test_derived_metadata_inherits_env_workdir_and_versions() -> None:
    parent = t.TemplateMeta(
        "p:1", t.TemplateKind.BUILTIN, None, "h", {"A": "1", "B": "1"}, "/w", {"debian": "13"}
    )
    spec = t.parse_spec('name = "c:1"\nparent = "p:1"\n[env]\nB = "2"')
    meta = t.derive_meta("c:1", t.TemplateKind.SPEC, "x", spec, parent)
    assert (meta.env, meta.workdir, meta.versions, meta.parent) == (
        {"A": "1", "B": "2"},
        "/w",
        {"debian": "13"},
        "p:1",
    )


def test_metadata_survives_its_json_form() -> None:
    meta = t.TemplateMeta(
        "a:1", t.TemplateKind.SAVED, "python:1", "h" * 64, {"X": "y"}, "/app", {"python": "3.13.5"},
        size_bytes=123, created_at=datetime(2026, 1, 2, tzinfo=UTC), has_workspace=True,
    )  # fmt: skip
    assert t.TemplateMeta.from_json(meta.to_json()) == meta
    public = t.TemplateRecord(meta, t.TemplateStatus.READY, tenant="acme").to_public()
    assert set(public) == {
        "name", "kind", "parent", "status", "versions", "size_bytes", "content_hash", "env", "workdir",
        "created_at", "image", "durable", "durable_at",
    }  # fmt: skip
    assert public["status"] == "ready" and public["created_at"] == "2026-01-02T00:00:00+00:00"


def test_the_builtins_form_a_tree_over_base_and_cover_every_preset() -> None:
    catalog = builtins()
    assert set(catalog) == {
        "base:1",
        "python:1",
        "node:1",
        "go:1",
        "rust:1",
        "devbox:1",
        "wasm-build:1",
        "e2b-base:1",
    }
    assert set(PRESET_TEMPLATES.values()) <= set(catalog)
    assert PRESET_TEMPLATES[Language.BASH] == BASE and PRESET_TEMPLATES[Language.PYTHON] == "python:1"
    for name, b in catalog.items():
        assert b.parent is None or b.parent in catalog, name
        assert b.meta().content_hash == b.content_hash
    assert len({b.content_hash for b in catalog.values()}) == len(catalog)
    devbox = catalog["devbox:1"]
    assert devbox.spec is not None and {"node", "bun", "pi", "go", "rustc"} <= set(devbox.spec.versions)
    assert devbox.meta().env["GOTOOLCHAIN"] == "local" and "PIP_BREAK_SYSTEM_PACKAGES" in devbox.meta().env


def run_snippet(language: Language, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(run_recipes.run_code_argv(language)),
        input=code,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_the_run_script_takes_the_code_on_stdin_runs_it_and_removes_its_dir() -> None:
    argv = run_recipes.run_code_argv(Language.BASH)
    assert "exit 3" not in " ".join(argv)
    proc = run_snippet(Language.BASH, 'echo "from $0"; echo oops >&2; exit 3')
    assert proc.returncode == 3 and proc.stderr == "oops\n"
    ran_from = proc.stdout.strip().removeprefix("from ")
    assert ran_from.startswith("/tmp/shells-run.") and ran_from.endswith("/main.sh")
    assert not Path(ran_from).parent.exists()


def test_every_language_has_a_recipe_naming_its_file() -> None:
    for language in Language:
        script = run_recipes.run_code_argv(language)[2]
        assert run_recipes.RUN_RECIPES[language].filename in script and 'cat > "$SRC"' in script
