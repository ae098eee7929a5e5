"""The CLI's pure pieces: key=value parsing, tables, ages, JSON of records, the build bar, spec inlining."""

from __future__ import annotations

import io
import json
import tomllib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from shells.cli.output import age, key_values, plain, table
from shells.cli.progress import BuildProgress, bar
from shells.cli.template_commands import inline_sources
from shells.cli.usage_commands import day_chart, usage_table
from shells.sdk import BuildDone, BuildOutput, BuildStep, ShellInfo, Template, UsageLine, UsageReport


def test_key_values_and_their_errors() -> None:
    assert key_values(["A=1", "B=x=y", "C="], "--env") == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(SystemExit, match="--env must look like KEY=VALUE"):
        key_values(["novalue"], "--env")


def test_table_and_age() -> None:
    assert table(["A", "LONG"], [["xx", 1], ["y", ""]]).splitlines() == ["A   LONG", "xx  1", "y"]
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert [age(now - timedelta(seconds=s), now) for s in (5, 120, 7200, 200000)] == ["5s", "2m", "2h", "2d"]
    assert age(None) == "-"


def test_records_print_as_json() -> None:
    info = ShellInfo.parse(
        {"id": "sh_1", "name": "n", "state": "running", "created_at": "2025-01-01T00:00:00+00:00"}
    )
    data = json.loads(json.dumps(plain([info])))
    assert data[0]["network"] == {"mode": "sealed", "allow": []}
    assert data[0]["created_at"] == "2025-01-01T00:00:00+00:00"


def test_the_bar_fills_with_the_steps_and_fits_the_width() -> None:
    assert bar(0, 4, "start", 80) == "[........................] 0/4 start"
    assert bar(2, 4, "apt", 80).startswith("[############............] 2/4")
    assert len(bar(1, 4, "x" * 200, 40)) == 40


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_bar_is_redrawn_in_place() -> None:
    out = FakeTty()
    progress = BuildProgress(out, width=60)
    progress(BuildStep(index=1, total=2, name="start"))
    progress(BuildOutput(data="hidden\n"))
    progress(BuildStep(index=2, total=2, name="apt"))
    progress(BuildDone(template=Template(name="t:1")))
    text = out.getvalue()
    assert text.count("\r") == 3 and "hidden" not in text and text.endswith("2/2 done\x1b[K\n")


def test_elsewhere_each_step_is_a_line_and_verbose_shows_output() -> None:
    out = io.StringIO()
    progress = BuildProgress(out, verbose=True)
    progress(BuildStep(index=1, total=2, name="start"))
    progress(BuildOutput(data="installing\n"))
    progress(BuildDone(template=Template(name="t:1")))
    assert out.getvalue() == "step 1/2: start\ninstalling\n"


def test_local_file_sources_are_inlined_and_the_rest_kept(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.ini").write_text('key = "v"\nline2 \\ é\n')
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'name = "app:1"\nparent = "python:1"\npip = ["rich"]\n[env]\nMODE = "prod"\n'
        '[[files]]\npath = "/etc/app.ini"\nsource = "conf/app.ini"\nmode = 0o600\n'
        '[[files]]\npath = "/etc/motd"\ncontent = "hi"\n'
    )
    parsed = tomllib.loads(inline_sources(spec))
    assert parsed == {
        "name": "app:1",
        "parent": "python:1",
        "pip": ["rich"],
        "env": {"MODE": "prod"},
        "files": [
            {"path": "/etc/app.ini", "content": 'key = "v"\nline2 \\ é\n', "mode": 0o600},
            {"path": "/etc/motd", "content": "hi"},
        ],
    }
    plain_spec = tmp_path / "plain.toml"
    plain_spec.write_text('name = "a:1"  # comment kept\n')
    assert inline_sources(plain_spec) == 'name = "a:1"  # comment kept\n'
    (tmp_path / "bad.toml").write_text('[[files]]\npath = "/x"\nsource = "missing.txt"\n')
    with pytest.raises(SystemExit, match=r"missing\.txt"):
        inline_sources(tmp_path / "bad.toml")


def test_usage_table_and_day_chart() -> None:
    def line(key: str, seconds: float, cost: str) -> UsageLine:
        return UsageLine(
            key=key, seconds=seconds, vcpu_seconds=2 * seconds, gib_seconds=seconds, cost_usd=Decimal(cost)
        )

    days = [
        line("2026-03-02", 7200, "0.266400"),
        line("2026-03-03", 3600, "0.133200"),
        line("2026-03-04", 1, "0.000001"),
    ]
    days.append(line("2026-03-05", 0, "0"))
    chart = day_chart(days, width=10).splitlines()
    assert chart == [
        "2026-03-02  ██████████  $0.266400",
        "2026-03-03  █████       $0.133200",
        "2026-03-04  █           $0.000001",  # a day that cost anything shows
        "2026-03-05              $0",
    ]
    report = UsageReport(
        tenant="t",
        start=datetime(2026, 3, 2, tzinfo=UTC),
        end=datetime(2026, 3, 6, tzinfo=UTC),
        group_by="day",
        owner=None,
        lines=days[:2],
        total=line("total", 10800, "0.399600"),
        month=None,
    )
    assert usage_table(report).splitlines() == [
        "DAY         HOURS  VCPU-HOURS  GIB-HOURS  COST USD",
        "2026-03-02  2.000  4.000       2.000      0.266400",
        "2026-03-03  1.000  2.000       1.000      0.133200",
        "total       3.000  6.000       3.000      0.399600",
    ]
    assert plain(days[0])["cost_usd"] == "0.266400"  # --json keeps money exact
