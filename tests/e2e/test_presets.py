"""Each language preset runs a real program in a fresh container shell, and the run endpoint runs a
snippet in every language (compile errors are output and an exit code, not API errors)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .rest import ShellMaker, error_of, exec_wait, ndjson

pytestmark = pytest.mark.usefixtures("built_templates")


def put(api: httpx.Client, shell_id: str, path: str, content: str) -> None:
    parent = path.rsplit("/", 1)[0]
    assert api.post(f"/v1/shells/{shell_id}/files/mkdir", params={"path": parent}).status_code == 201
    r = api.put(f"/v1/shells/{shell_id}/files", params={"path": path}, content=content.encode())
    assert r.status_code == 200, r.text


def run(api: httpx.Client, shell_id: str, code: str, **extra: Any) -> dict[str, Any]:
    r = api.post(f"/v1/shells/{shell_id}/run", params={"wait": "true"}, json={"code": code, **extra})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_the_python_preset_runs_a_script_importing_the_standard_library(
    api: httpx.Client, make_rest_shell: ShellMaker
) -> None:
    sh = make_rest_shell(language="python")
    assert sh["template"] == "python:1"
    put(
        api,
        sh["id"],
        "/workspace/stats.py",
        "import statistics, json\nprint(json.dumps(statistics.mean([1, 2, 6])))\n",
    )
    out = exec_wait(api, sh["id"], "python3 stats.py")
    assert (out["stdout"], out["exit_code"]) == ("3\n", 0)
    pip = exec_wait(
        api, sh["id"], "python3 -m pip --version && python3 -m venv /tmp/v && /tmp/v/bin/python -V"
    )
    assert pip["exit_code"] == 0, pip


def test_the_node_preset_runs_a_script_using_fs(api: httpx.Client, make_rest_shell: ShellMaker) -> None:
    sh = make_rest_shell(language="node")
    assert sh["template"] == "node:1"
    script = (
        "const fs = require('fs');\n"
        "fs.writeFileSync('/workspace/out.txt', ['a', 'b', 'c'].join('-'));\n"
        "console.log(fs.readFileSync('/workspace/out.txt', 'utf8').toUpperCase());\n"
    )
    put(api, sh["id"], "/workspace/main.js", script)
    out = exec_wait(api, sh["id"], "node main.js && npm --version")
    assert out["exit_code"] == 0, out
    assert out["stdout"].splitlines()[0] == "A-B-C"


def test_the_bash_preset_runs_a_pipeline(api: httpx.Client, make_rest_shell: ShellMaker) -> None:
    sh = make_rest_shell(language="bash")
    assert sh["template"] == "base:1"
    pipeline = "seq 1 100 | grep -E '[05]$' | sort -rn | head -n 3 | awk '{ s += $1 } END { print s }'"
    r = api.post(
        f"/v1/shells/{sh['id']}/exec",
        params={"wait": "true"},
        json={"cmd": ["bash", "-o", "pipefail", "-c", pipeline]},
    )
    out = r.json()
    assert (out["stdout"], out["exit_code"]) == ("285\n", 0), out


GO_MAIN = """package main

import (
\t"fmt"

\t"example.com/hello/greet"
)

func main() { fmt.Println(greet.Hello("shells")) }
"""
GO_GREET = """package greet

import "strings"

func Hello(name string) string { return "hello, " + strings.ToUpper(name) }
"""


def test_the_go_preset_runs_a_program_with_two_packages(
    api: httpx.Client, make_rest_shell: ShellMaker
) -> None:
    sh = make_rest_shell(language="go")  # sealed network: nothing may be downloaded
    assert sh["template"] == "go:1"
    put(api, sh["id"], "/workspace/hello/go.mod", "module example.com/hello\n\ngo 1.22\n")
    put(api, sh["id"], "/workspace/hello/main.go", GO_MAIN)
    put(api, sh["id"], "/workspace/hello/greet/greet.go", GO_GREET)
    out = exec_wait(api, sh["id"], "go run .", cwd="/workspace/hello", timeout_s=300)
    assert (out["stdout"], out["exit_code"]) == ("hello, SHELLS\n", 0), out


def test_the_rust_preset_builds_a_crate_with_a_local_dependency_offline(
    api: httpx.Client, make_rest_shell: ShellMaker
) -> None:
    sh = make_rest_shell(language="rust")
    assert sh["template"] == "rust:1"
    package = '[package]\nname = "{}"\nversion = "0.1.0"\nedition = "2021"\n'
    app = package.format("app") + '\n[dependencies]\nshout = { path = "../shout" }\n'
    put(api, sh["id"], "/workspace/app/Cargo.toml", app)
    put(api, sh["id"], "/workspace/app/src/main.rs", 'fn main() { println!("{}", shout::shout("cargo")); }\n')
    put(api, sh["id"], "/workspace/shout/Cargo.toml", package.format("shout"))
    put(
        api,
        sh["id"],
        "/workspace/shout/src/lib.rs",
        'pub fn shout(s: &str) -> String { s.to_uppercase() + "!" }\n',
    )
    out = exec_wait(
        api, sh["id"], "cargo build --offline -q && ./target/debug/app", cwd="/workspace/app", timeout_s=300
    )
    assert (out["stdout"], out["exit_code"]) == ("CARGO!\n", 0), out


def test_devbox_has_every_toolchain_in_one_shell(api: httpx.Client, make_rest_shell: ShellMaker) -> None:
    sh = make_rest_shell(language="python", template="devbox")  # a bare name resolves to its newest tag
    assert sh["template"] == "devbox:1"
    out = exec_wait(
        api, sh["id"], "node --version; bun --version; python3 --version; go version; rustc --version"
    )
    assert out["exit_code"] == 0, out
    node, bun, python, go, rustc = out["stdout"].splitlines()
    assert node.startswith("v20.") and bun[0].isdigit() and python.startswith("Python 3.13")
    assert go.startswith("go version go1.24") and rustc.startswith("rustc 1.85")
    listed = api.get("/v1/templates/devbox:1").json()
    assert {"node", "bun", "python", "go", "rustc"} <= set(listed["versions"])
    assert listed["versions"]["bun"] == bun


SNIPPETS = {
    "python": ("import sys\nprint('py', sys.version_info[0])", "py 3\n"),
    "node": ("console.log('js', [1, 2, 3].map(x => x * 2).join(','))", "js 2,4,6\n"),
    "bash": ("for i in 1 2 3; do printf %s $i; done; echo", "123\n"),
    "go": ('package main\nimport "fmt"\nfunc main() { fmt.Println("go", 6*7) }\n', "go 42\n"),
    "rust": ('fn main() { println!("rs {}", 6 * 7); }\n', "rs 42\n"),
}
BROKEN = {
    "python": ("print('unclosed'", "SyntaxError"),
    "node": ("console.log(;", "SyntaxError"),
    "bash": ("if then fi", "syntax error"),
    "go": ("package main\nfunc main() { undefined_call() }\n", "undefined: undefined_call"),
    "rust": ('fn main() { let x: i32 = "text"; }\n', "mismatched types"),
}


@pytest.mark.parametrize("language", list(SNIPPETS))
def test_run_runs_a_snippet_with_the_shells_own_language(
    api: httpx.Client, make_rest_shell: ShellMaker, language: str
) -> None:
    sh = make_rest_shell(language=language)
    code, expected = SNIPPETS[language]
    out = run(api, sh["id"], code, timeout_s=300)
    assert (out["stdout"], out["exit_code"]) == (expected, 0), out
    broken, message = BROKEN[language]
    failed = run(api, sh["id"], broken, timeout_s=300)
    assert failed["exit_code"] != 0 and message in failed["stdout"] + failed["stderr"], failed
    leftovers = exec_wait(api, sh["id"], "ls /tmp | grep -c shells-run || true")
    assert leftovers["stdout"] == "0\n"


def test_run_streams_like_exec_and_takes_another_language(
    api: httpx.Client, make_rest_shell: ShellMaker
) -> None:
    sh = make_rest_shell(language="bash")
    events = ndjson(
        api,
        f"/v1/shells/{sh['id']}/run",
        {
            "code": "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.05)\n",
            "language": "python",
        },
    )
    assert events[0]["type"] == "started" and events[-1]["type"] == "exit" and events[-1]["exit_code"] == 0
    assert "".join(e["data"] for e in events if e["type"] == "stdout") == "0\n1\n2\n"
    timed = run(api, sh["id"], "sleep 30", timeout_s=0.5)
    assert timed["timed_out"] is True and timed["exit_code"] == 137
    runs = [e for e in api.get(f"/v1/shells/{sh['id']}/events").json()["events"] if e["kind"] == "exec"]
    assert [e["action"] for e in runs[-2:]] == ["run python", "run bash"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "invalid_request"),
        ({"code": ""}, 400, "invalid_request"),
        ({"code": "print(1)", "language": "cobol"}, 400, "invalid_request"),
        ({"code": "print(1)", "colour": "red"}, 400, "invalid_request"),
        ({"code": "print(1)", "timeout_s": "soon"}, 400, "invalid_request"),
    ],
)
def test_bad_run_requests_are_typed_4xx(
    api: httpx.Client, make_rest_shell: ShellMaker, body: dict[str, Any], status: int, code: str
) -> None:
    sh = make_rest_shell(language="bash")
    error_of(api.post(f"/v1/shells/{sh['id']}/run", json=body), status, code)


def test_run_in_a_missing_shell_is_a_404(api: httpx.Client) -> None:
    error_of(
        api.post("/v1/shells/sh_nosuchshell000000000/run", json={"code": "echo"}), 404, "shell_not_found"
    )


def test_templates_give_shells_their_env_and_a_request_overrides_it(
    api: httpx.Client, make_rest_shell: ShellMaker
) -> None:
    sh = make_rest_shell(language="go", env={"MINE": "1"})
    out = exec_wait(api, sh["id"], 'echo "$GOTOOLCHAIN $MINE $HOME"; pwd')
    assert out["stdout"] == "local 1 /root\n/workspace\n"
    over = exec_wait(api, sh["id"], 'echo "$GOTOOLCHAIN"', env={"GOTOOLCHAIN": "auto"})
    assert over["stdout"] == "auto\n"
