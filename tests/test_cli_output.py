"""Machine-friendly output: a JSON error document with --json, unsqueezed tables off a terminal,
progress lines on stderr off a terminal."""
from __future__ import annotations

import json
import time

from click.testing import CliRunner

from mace.cli import cli


def _invoke(args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_json_error_document_on_stdout(tmp_path):
    cases = [(["inspect", tmp_path / "absent.bin", "--json"], "absent.bin: no such file", None),
             (["run", tmp_path / "absent.mace", "--json"], "no such model file", "ModelFileError"),
             (["run", tmp_path / "absent.mace", "--json", "--bogus"], "No such option '--bogus'", "UsageError"),
             (["cache", "verify", tmp_path / "absent.bin", "--json"], "absent.bin", None)]
    for args, text, kind in cases:
        res = _invoke(args)
        assert res.exit_code == 2, (args, res.output)
        doc = json.loads(res.stdout)
        assert doc["ok"] is False and doc["code"] == 2 and text in doc["error"], (args, doc)
        assert kind is None or doc["type"] == kind


def test_no_json_document_without_json(tmp_path):
    res = _invoke(["run", tmp_path / "absent.mace"])
    assert res.exit_code == 2 and res.stdout == "" and "error: " in res.stderr


def test_tables_are_not_squeezed_off_a_terminal(monkeypatch, capsys):
    from rich.table import Table

    from mace.cli.common import console
    monkeypatch.delenv("COLUMNS", raising=False)
    name = "/features/features.12/conv/conv.0/Conv_with_a_long_layer_name_" + "x" * 60
    t = Table(title="ops")
    for col in ("op", "ms"):
        t.add_column(col)
    t.add_row(name, "1.000")
    console().print(t)
    out = capsys.readouterr().out
    assert name in out and not any("…" in line for line in out.splitlines())


def test_progress_lines_off_a_terminal(capsys):
    from mace.cli.progress import Lines
    with Lines(period=0.05) as p:
        task = p.add("cold init (fresh processes)", 5)
        p.advance(task, 2, item="run 2")
        time.sleep(0.3)
        p.step("latency")
    err = capsys.readouterr().err.splitlines()
    assert err[0].endswith("cold init (fresh processes) (0/5)")
    assert any(line.endswith("cold init (fresh processes) 2/5, run 2 (still running)") for line in err)
    assert err[-1].startswith("mace progress") and "latency" in "\n".join(err)


def test_for_stderr_picks_lines_off_a_terminal():
    from mace.cli.progress import Lines, for_stderr
    assert isinstance(for_stderr(True), Lines) and isinstance(for_stderr(False), Lines)   # pytest: no tty


def test_inspect_exit_codes_match_the_format_doc(tmp_path):
    """docs/program-cache-format.md: 0 readable, 1 unreadable or damaged, 2 no such file."""
    from pathlib import Path
    fixture = Path(__file__).resolve().parent / "fixtures" / "mace_legacy_adreno.bin"
    data = fixture.read_bytes()
    assert _invoke(["inspect", fixture]).exit_code == 0
    for name, damaged in (("cut.bin", data[: len(data) // 2]), ("empty.bin", b""), ("junk.bin", b"MACECLPC" + b"\0" * 40)):
        (tmp_path / name).write_bytes(damaged)
        assert _invoke(["inspect", tmp_path / name]).exit_code == 1, name
    assert _invoke(["inspect", tmp_path / "absent.bin"]).exit_code == 2
