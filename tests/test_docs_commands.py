"""Every command shown in README.md and docs/*.md (their bash code blocks) runs as shown, on the
bundled example, so the docs cannot drift from the tool. Commands that need a board over ssh are
parsed by the command line (every verb and option must exist), and so are those on a TensorFlow,
TFLite or PyTorch model (tests/sources runs those paths); two are not run, each with its
reason below. README's Python block runs too."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mace.cli import cli

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "mace" / "examples" / "digits"
DOCS = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
#: commands shown but not run here, and why
NOT_RUN = {"pip install": "installs packages (CI runs the quick start in a fresh venv)",
           "python -m pytest": "the test suite itself"}
#: a model of another framework (README, "Models from TensorFlow..."): those commands are parsed
#: only, since the model would have to be built with that framework first (tests/sources runs them)
SOURCE_MODELS = re.compile(r"\.(pb|tflite|pt2)$|^\w+:\w+$")
#: saved --json output that `mace report --from-json` reads back, from the verb that writes it
SAVED = {"convert": "convert.json", "benchmark": "bench.json", "validate": "validate.json"}
PLACEHOLDERS = {"<lib>": "digits", "<library>": "digits", "<library_name>": "digits", "<model>": "digits_cnn"}
DEVICE_YML = """devices:
  nanopi:
    target_abis: [arm64]
    target_socs: RK3399
    models: Nanopi M4
    address: 192.0.2.1
    username: pi
"""


def doc_commands() -> list[tuple[str, str]]:
    """(where, command) for each command line of each bash block, continuations joined,
    comments dropped, `a && b` split."""
    out = []
    for doc in DOCS:
        text = doc.read_text()
        for m in re.finditer(r"```(bash|sh|shell)\n(.*?)```", text, re.S):
            first = text[:m.start()].count("\n") + 2
            for i, line in enumerate(m.group(2).replace("\\\n", " ").splitlines()):
                line = re.sub(r"\s+#\s.*$", "", line).strip()
                if not line or line.startswith("#"):
                    continue
                for part in line.split("&&"):
                    out.append((f"{doc.relative_to(REPO)}:{first + i}", part.strip()))
    return out


COMMANDS = doc_commands()


def _args(command: str) -> list[str]:
    for k, v in PLACEHOLDERS.items():
        command = command.replace(k, v)
    command = re.sub(r"\s\[[^\]]*\]", "", command)          # optional parts: [--tune] [--embed]
    return shlex.split(command)


def test_the_docs_show_commands():
    assert len(COMMANDS) >= 25
    for where, command in COMMANDS:
        assert command.startswith("mace ") or any(command.startswith(k) for k in NOT_RUN), \
            f"{where}: {command!r} is neither a mace command nor listed in NOT_RUN"


def _parse(args: list[str]) -> None:
    """The command line accepts this verb and its options (nothing is run)."""
    ctx = cli.make_context("mace", list(args), resilient_parsing=False)
    cmd = cli.get_command(ctx, args[0])
    assert cmd is not None, f"no verb {args[0]}"
    cmd.make_context(args[0], list(args[1:]), parent=ctx)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = tmp_path_factory.mktemp("docs")
    for name in ("mace.yml", "digits_cnn.onnx"):
        shutil.copy(EXAMPLE / name, ws / name)
    shutil.copy(EXAMPLE / "digits_cnn.onnx", ws / "model.onnx")
    for name in ("device.yml", "devices.yml"):
        (ws / name).write_text(DEVICE_YML)
    digits = np.load(EXAMPLE / "digits_test.npz")          # quantization: calibration, an input, labels
    (ws / "calib").mkdir()
    for k in range(8):
        np.save(ws / "calib" / f"{k}.npy", digits["x"][k + 8:k + 9])
    np.save(ws / "digit.npy", digits["x"][:1])
    shutil.copy(EXAMPLE / "digits_test.npz", ws / "test.npz")
    return ws


def test_every_doc_command_runs(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("MACE_PROGRAM_PATH", str(workspace / "mace-cl-compiled-program.bin"))
    # `mace cache keygen --trust` writes the user's key and trusted-keys file: a home of its own
    monkeypatch.setenv("HOME", str(workspace))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(workspace / ".config"))
    monkeypatch.delenv("MACE_TRUSTED_KEYS", raising=False)
    runner = CliRunner()
    ran = 0
    for where, command in COMMANDS:
        if any(command.startswith(k) for k in NOT_RUN):
            continue
        args = [os.path.expanduser(a) if a.startswith("~/") else a for a in _args(command)[1:]]
        if "P.bin" in args and not (workspace / "P.bin").exists():   # the docs' "your program file"
            shutil.copy(workspace / "mace-cl-compiled-program.bin", workspace / "P.bin")
        if any(SOURCE_MODELS.search(a) for a in args[1:]):   # needs a framework's model: parsed only
            _parse(args)
            continue
        if "--device-conf" in args:                        # needs a board over ssh: parsed only
            _parse(args)
            if "--program" in args:                        # what the deploy would have merged into
                prog = workspace / args[args.index("--program") + 1]
                if not prog.exists():
                    prog.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(workspace / "mace-cl-compiled-program.bin", prog)
            continue
        save = SAVED.get(args[0]) if "--config" in args or args[0] != "convert" else None
        res = runner.invoke(cli, args + (["--json"] if save else []))
        assert res.exit_code == 0, f"{where}: {command}\n{res.output}"
        if save:
            json.loads(res.stdout)
            (workspace / save).write_text(res.stdout)
        ran += 1
    assert ran >= 20


def test_readme_python_block_runs(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("MACE_PROGRAM_PATH", str(workspace / "mace-cl-compiled-program.bin"))
    if not (workspace / "model.mace").exists():
        assert CliRunner().invoke(cli, ["convert", "model.onnx", "-o", "model.mace"]).exit_code == 0
    text = (REPO / "README.md").read_text()
    block = re.search(r"Python API:\n\n```python\n(.*?)```", text, re.S).group(1)
    x = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
    exec(compile(block, "README.md", "exec"), {"x": x})
