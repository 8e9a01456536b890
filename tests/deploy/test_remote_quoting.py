"""device.yml words reach the remote shell quoted: metacharacters in `python:` or `env` never
run a second command on the device (checked against the real sshd of conftest.py), and the
file is read only when named with --device-conf."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mace.cli import cli
from mace.deploy.devices import load_devices, remote_python

REPO = Path(__file__).resolve().parents[2]


def _deploy(sshd, digits, tmp_path, **over):
    conf = sshd.write_conf(tmp_path / "device.yml", {"dev": sshd.device(0, workdir=tmp_path / "remote", **over)})
    return CliRunner().invoke(cli, ["deploy", "--device-conf", str(conf), str(digits["model"]),
                                    "--program", str(tmp_path / "p.bin"), "--runtime", "cpu"])


@pytest.mark.parametrize("python", ["{py}; touch {m}", "{py} $(touch {m})", "{py} `touch {m}`",
                                    "{py} && touch {m}", "{py} | touch {m}", "{py}\ntouch {m}"])
def test_python_metacharacters_stay_one_word(sshd, digits, tmp_path, python):
    marker = tmp_path / "PWNED"
    res = _deploy(sshd, digits, tmp_path, python=python.format(py=sys.executable, m=marker))
    assert res.exit_code == 2, res.output
    assert not marker.exists(), "a metacharacter in python: ran a command on the device"
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output


def test_env_value_metacharacters_stay_data(sshd, digits, tmp_path):
    marker = tmp_path / "PWNED"
    res = _deploy(sshd, digits, tmp_path, env={"PYTHONPATH": str(REPO), "X": f"$(touch {marker}); `touch {marker}`"})
    assert res.exit_code == 0, res.output
    assert not marker.exists()


def test_python_with_arguments_still_works(sshd, digits, tmp_path):
    res = _deploy(sshd, digits, tmp_path, python=f"{sys.executable} -X utf8")
    assert res.exit_code == 0, res.output


def test_remote_python_quotes_each_word(sshd, tmp_path):
    conf = sshd.write_conf(tmp_path / "device.yml", {"dev": sshd.device(0, python="py 'a b' $(x);y")})
    spec = load_devices(conf).devices["dev"]
    assert remote_python(spec) == "py 'a b' '$(x);y'"


def test_device_yml_is_not_read_from_the_current_directory(sshd, digits, tmp_path, monkeypatch):
    sshd.write_conf(tmp_path / "device.yml", {"dev": sshd.device(0)})
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["deploy", str(digits["model"])])
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and "--device-conf" in res.stderr, res.stderr
