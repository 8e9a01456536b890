"""`mace deploy` / run_remote against real sshd servers (tests/deploy/conftest.py).

Two "devices" on this machine: device 0 uses PoCL's default `pthread` CPU device, device 1 runs
with env POCL_DEVICES=basic, PoCL's single-threaded `basic` driver: a different OpenCL device
(device_name and device_version differ), hence a different fingerprint and a second section
in the one local program file.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mace.cli import cli
from mace.deploy import errors as E
from mace.deploy.devices import load_devices
from mace.deploy.remote import RESULT_JSON, deploy, run_remote
from mace.deploy.transport import Completed, SshTransport
from mace.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

MODEL_DIR = "digits"                 # <workdir>/<model file stem>/


def _invoke(args):
    res = CliRunner().invoke(cli, args)
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res


def _inspect(path: Path) -> dict:
    res = _invoke(["inspect", str(path), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _assert_close(out_dir: Path, digits) -> None:
    for name, ref in digits["ref"].items():
        got = np.load(out_dir / f"{name.replace('/', '_')}.npy")
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def two_devices(sshd, digits, tmp_path_factory):
    """One `mace deploy --json` to both devices (no --device): the shared happy path."""
    root = tmp_path_factory.mktemp("deploy")
    conf = sshd.write_conf(root / "device.yml", {
        "pthread": sshd.device(0),
        "basic": sshd.device(1, env={"PYTHONPATH": str(REPO), "POCL_DEVICES": "basic"}),
    })
    program, out = root / "program.bin", root / "out"
    res = _invoke(["deploy", "--device-conf", str(conf), str(digits["model"]), "--program", str(program),
                   "--runtime", "gpu", "--input", f"{digits['input_name']}={digits['x']}",
                   "--output-dir", str(out), "--json"])
    assert res.exit_code == 0, res.output
    return {"conf": conf, "program": program, "out": out, "doc": json.loads(res.stdout), "root": root}


def test_deploy_runs_on_both_devices_and_outputs_match_cpu(two_devices, digits):
    doc = two_devices["doc"]
    assert doc["ok"] and [r["device"] for r in doc["devices"]] == ["pthread", "basic"]
    for r in doc["devices"]:
        assert r["ok"], r
        dev_out = two_devices["out"] / r["device"]
        _assert_close(dev_out, digits)
        # the JSON (timings) came back beside the outputs, whole
        saved = json.loads((dev_out / RESULT_JSON).read_text())
        assert saved["first_run_ms"] > 0 and saved == r["run"]
        assert r["run"]["summary"]["runtime"] == "gpu"
        assert set(r["timings"]) >= {"probe_s", "upload_s", "run_s", "download_s", "total_s"}
        assert not list(dev_out.glob(".mace-pull-*"))          # temp download dirs removed
    devices = [r["run"]["summary"]["device"] for r in doc["devices"]]
    assert "pthread" in devices[0] and "basic" in devices[1]


def test_program_file_gains_one_section_per_device(two_devices):
    info = _inspect(two_devices["program"])
    assert info["format"] == "mace"
    shorts = sorted(s["short"] for s in info["sections"])
    assert len(shorts) == 2, shorts
    assert shorts[0].startswith("basic-") and shorts[1].startswith("pthread-")
    assert all(s["programs"] > 0 for s in info["sections"])
    doc = two_devices["doc"]
    new = [x["id"] for r in doc["devices"] for x in r["program"]["new_sections"]]
    assert sorted(new) == sorted(s["id"] for s in info["sections"])   # each device added its own


def test_remote_files_are_in_place_without_staging_leftovers(two_devices, sshd):
    for i in range(2):
        rdir = sshd.root / f"remote{i}" / MODEL_DIR
        assert (rdir / "model.mace").is_file() and (rdir / "inputs" / "in0.npy").is_file()
        assert (rdir / "mace-cl-compiled-program.bin").is_file()
        assert not list(rdir.glob(".incoming-*"))


def test_run_remote_reuses_the_merged_program_file(two_devices, digits, tmp_path):
    """The second run uploads the merged file: the device finds its own section in it."""
    program = tmp_path / "program.bin"
    shutil.copy(two_devices["program"], program)
    out = tmp_path / "out"
    r = run_remote(two_devices["conf"], "basic", digits["model"], program=program, runtime="gpu",
                   inputs=[f"{digits['input_name']}={digits['x']}"], output_dir=out)
    assert r["ok"] and r["program"]["uploaded"] and r["program"]["pulled"]
    pc = r["run"]["summary"]["program_cache"]
    assert pc["from_cache"] > 0 and pc["compiled"] == 0, pc
    _assert_close(out, digits)
    assert len(_inspect(program)["sections"]) == 2


def test_run_remote_needs_a_device_name_when_there_are_several(two_devices, digits):
    with pytest.raises(ConfigError, match="pick one with --device"):
        run_remote(two_devices["conf"], None, digits["model"])
    with pytest.raises(ConfigError, match="no device 'nope'.*pthread, basic"):
        run_remote(two_devices["conf"], "nope", digits["model"])


# -- errors: one line, naming the device and the fix -------------------------------------------

def _one_device_error(sshd, digits, tmp_path, **over):
    conf = sshd.write_conf(tmp_path / "device.yml", {"dev": sshd.device(0, workdir=tmp_path / "remote", **over)})
    res = _invoke(["deploy", "--device-conf", str(conf), str(digits["model"]),
                   "--program", str(tmp_path / "p.bin")])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, res.stderr
    assert "device dev (" in lines[0]
    return lines[0], tmp_path


def test_unreachable_host(sshd, digits, tmp_path):
    msg, _ = _one_device_error(sshd, digits, tmp_path, port=free_port())
    assert "unreachable" in msg and "Connection refused" in msg and "address/port" in msg


def test_auth_failure(sshd, digits, tmp_path):
    msg, _ = _one_device_error(sshd, digits, tmp_path, ssh_options=sshd.ssh_options(key=sshd.stranger_key))
    assert "login refused" in msg and "ssh-copy-id" in msg


def test_unknown_host_key_with_checking_on(sshd, digits, tmp_path):
    msg, _ = _one_device_error(sshd, digits, tmp_path,
                               ssh_options=sshd.ssh_options(known_hosts=sshd.empty_known_hosts))
    assert "not in known_hosts" in msg and "ssh-keyscan" in msg
    assert sshd.empty_known_hosts.read_text() == ""          # never accepted silently


def test_changed_host_key(sshd, digits, tmp_path):
    msg, _ = _one_device_error(sshd, digits, tmp_path,
                               ssh_options=sshd.ssh_options(known_hosts=sshd.wrong_known_hosts))
    assert "CHANGED" in msg and "ssh-keygen -R" in msg


def test_missing_remote_python(sshd, digits, tmp_path):
    msg, _ = _one_device_error(sshd, digits, tmp_path, python="/nonexistent/python3")
    assert "cannot run '/nonexistent/python3'" in msg and "python:" in msg


def test_remote_python_without_mace(sshd, digits, tmp_path):
    # -S: no site-packages (so no installed or editable mace), and no PYTHONPATH on the device
    msg, root = _one_device_error(sshd, digits, tmp_path, python=f"{sys.executable} -S", env={})
    assert "mace is not installed" in msg and "pip install ./mace_engine-" in msg
    assert not (root / "remote" / MODEL_DIR / "model.mace").exists()    # nothing was uploaded


def test_remote_mace_not_runnable(sshd, digits, tmp_path):
    msg, _ = _one_device_error(sshd, digits, tmp_path, python="/usr/bin/false")
    assert "-m mace --version` failed there" in msg and "pip install ./mace_engine-" in msg


def test_remote_run_failure_is_reported(sshd, digits, tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 3), np.float32))
    conf = sshd.write_conf(tmp_path / "device.yml", {"dev": sshd.device(0, workdir=tmp_path / "remote")})
    with pytest.raises(E.RemoteRunFailed, match=r"`mace run` failed there \(exit 2\): input .* has shape"):
        run_remote(conf, "dev", digits["model"], program=tmp_path / "p.bin", runtime="cpu",
                   inputs={digits["input_name"]: bad})


def test_one_failing_device_does_not_stop_the_others(sshd, digits, tmp_path):
    conf = sshd.write_conf(tmp_path / "device.yml", {
        "down": sshd.device(0, port=free_port()),
        "up": sshd.device(0, workdir=tmp_path / "remote"),
    })
    results = deploy(conf, None, digits["model"], program=tmp_path / "p.bin", runtime="cpu",
                     inputs={digits["input_name"]: digits["x"]}, output_dir=tmp_path / "out")
    assert [(r["device"], r["ok"]) for r in results] == [("down", False), ("up", True)]
    assert results[0]["error_type"] == "DeviceUnreachable"
    _assert_close(tmp_path / "out" / "up", digits)


# -- device.yml ------------------------------------------------------------------------------

def _base(**over):
    d = {"target_abis": ["arm64"], "target_socs": "RK3399", "models": "Nanopi M4",
         "address": "10.0.0.5", "username": "pi"}
    d.update(over)
    return d


def test_password_needs_explicit_opt_in(tmp_path, sshd):
    conf = sshd.write_conf(tmp_path / "device.yml", {"nanopi": _base(password="secret")})
    with pytest.raises(ConfigError, match=r"devices\.nanopi\.password: .*allow_password: true"):
        load_devices(conf)


def test_password_with_opt_in_warns_and_needs_sshpass(tmp_path, sshd, caplog, monkeypatch):
    conf = sshd.write_conf(tmp_path / "device.yml",
                           {"nanopi": _base(password="secret", allow_password=True)})
    import logging
    with caplog.at_level(logging.WARNING, logger="mace.deploy"):
        loaded = load_devices(conf)
    assert "plain text" in caplog.text
    real_which = shutil.which
    monkeypatch.setattr("mace.deploy.transport.shutil.which",
                        lambda name: None if name == "sshpass" else real_which(name))
    with pytest.raises(E.SshClientMissing, match="sshpass is not installed here: install it"):
        SshTransport("nanopi", loaded.devices["nanopi"]).ssh("true")


@pytest.mark.skipif(not shutil.which("sshpass"), reason="sshpass not installed")
def test_wrong_password_is_an_auth_failure(sshd, digits, tmp_path):
    msg, _ = _one_device_error(sshd, digits, tmp_path, password="wrong", allow_password=True,
                               ssh_options=sshd.ssh_options(key=sshd.stranger_key))
    assert "password" in msg and ("refused" in msg)


@pytest.mark.parametrize("over, match", [
    ({"adress": "x"}, r"devices\.d\.adress: unknown key 'adress' \(did you mean 'address'\?\): remove it or check its spelling"),
    ({"address": None}, r"devices\.d\.address: .*: correct it"),
    ({"port": 70000}, r"devices\.d\.port: .*65535"),
    ({"workdir": "relative/dir"}, r"devices\.d\.workdir: .*absolute path"),
    ({"ssh_options": ["-oProxyCommand=x"]}, r"devices\.d\.ssh_options: .*Key=Value"),
    ({"env": {"1BAD": "x"}}, r"devices\.d\.env: .*not an environment variable name"),
])
def test_device_yml_errors_name_file_field_and_fix(tmp_path, sshd, over, match):
    conf = sshd.write_conf(tmp_path / "device.yml", {"d": _base(**over)})
    with pytest.raises(ConfigError, match=match):
        load_devices(conf)


def test_device_yml_missing_field_and_defaults(tmp_path, sshd):
    d = _base()
    del d["username"]
    conf = sshd.write_conf(tmp_path / "device.yml", {"d": d})
    with pytest.raises(ConfigError, match=r"devices\.d\.username: required: add it"):
        load_devices(conf)
    spec = load_devices(sshd.write_conf(tmp_path / "ok.yml", {"d": _base()})).devices["d"]
    assert spec.python == "python3" and spec.workdir == "/tmp/data/mace_run"
    assert spec.target_socs == ["RK3399"] and spec.port is None


def test_transport_options_keep_host_key_checking_and_let_device_options_win(sshd):
    spec = load_devices(sshd.write_conf(sshd.root / "opts.yml", {"d": _base(
        port=2222, ssh_options=["ConnectTimeout=3"])})).devices["d"]
    opts = SshTransport("d", spec).options()
    assert not any("StrictHostKeyChecking" in o for o in opts)
    assert "BatchMode=yes" in opts and "Port=2222" in opts
    assert opts.index("ConnectTimeout=3") < opts.index("ConnectTimeout=10")   # first one wins in ssh


def test_disk_full_messages(sshd):
    spec = load_devices(sshd.write_conf(sshd.root / "df.yml", {"d": _base()})).devices["d"]
    t = SshTransport("d", spec)
    up = t.transfer_error(Completed(1, "", "scp: write remote \"/tmp/x\": No space left on device\n", 0),
                          "upload", "/tmp/x")
    assert isinstance(up, E.RemoteDiskFull) and "free space there or set workdir:" in str(up)
    down = t.transfer_error(Completed(1, "", "scp: write local: No space left on device\n", 0),
                            "download", "/out")
    assert isinstance(down, E.RemoteDiskFull) and "on this machine" in str(down)


# -- interrupted transfers leave no partial file at a final path ---------------------------------

@pytest.mark.skipif(not any(os.access(p, os.X_OK) for p in
                            ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                             "/usr/libexec/sftp-server", "/usr/lib/ssh/sftp-server")),
                    reason="needs an external sftp-server to limit the file size on the device")
def test_upload_failing_midway_leaves_nothing_in_place(sshd, digits, tmp_path):
    big = tmp_path / "big.npy"
    np.save(big, np.random.default_rng(0).standard_normal(256 * 1024).astype(np.float32))  # 1 MiB
    # the device's sftp server may write 64 KiB per file: the upload dies midway through big.npy
    dev = sshd.device(0, workdir=tmp_path / "remote",
                      ssh_options=sshd.ssh_options() + ["SetEnv=MACE_TEST_FSIZE=128"])
    conf = sshd.write_conf(tmp_path / "device.yml", {"dev": dev})
    with pytest.raises(E.TransferFailed, match="upload stopped midway .*nothing was put in place"):
        run_remote(conf, "dev", digits["model"], program=tmp_path / "p.bin",
                   inputs={digits["input_name"]: big})
    rdir = tmp_path / "remote" / MODEL_DIR
    assert rdir.is_dir()
    assert sorted(p.name for p in rdir.iterdir()) == []       # no model, no input, no staging dir


def test_download_failing_midway_leaves_nothing_in_place(sshd, digits, two_devices, tmp_path):
    program = tmp_path / "program.bin"
    shutil.copy(two_devices["program"], program)          # > 1 MB: the device sends it back
    before = program.read_bytes()
    conf = sshd.write_conf(tmp_path / "device.yml", {"dev": sshd.device(0, workdir=tmp_path / "remote")})
    out = tmp_path / "out"

    def limit_file_size():      # scp (a child) dies with SIGXFSZ past 256 KiB written
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, resource.RLIM_INFINITY))
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.run([sys.executable, "-m", "mace", "deploy", "--device-conf", str(conf),
                        str(digits["model"]), "--program", str(program), "--runtime", "gpu",
                        "--input", f"{digits['input_name']}={digits['x']}", "--output-dir", str(out)],
                       capture_output=True, text=True, env=env, preexec_fn=limit_file_size, timeout=120)
    assert p.returncode == 2, p.stderr
    assert "download stopped midway (scp was killed by SIGXFSZ)" in p.stderr
    assert program.read_bytes() == before                  # local program file untouched
    dev_out = out / "dev"
    assert sorted(x.name for x in dev_out.iterdir()) == []  # no output, no JSON, no temp dir


def test_mace_run_with_device_conf(two_devices, digits, tmp_path):
    """`mace run --device-conf device.yml --device NAME` forwards to run_remote (when wired)."""
    if "--device-conf" not in _invoke(["run", "--help"]).output:
        pytest.skip("`mace run` has no --device-conf option yet (the lead wires run_remote into it)")
    out = tmp_path / "out"
    res = _invoke(["run", "--device-conf", str(two_devices["conf"]), "--device", "pthread",
                   str(digits["model"]), "--program", str(tmp_path / "p.bin"), "--runtime", "gpu",
                   "--input", f"{digits['input_name']}={digits['x']}", "--output-dir", str(out), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["device"] == "pthread" and doc["ok"]
    _assert_close(out, digits)
    assert len(_inspect(tmp_path / "p.bin")["sections"]) == 1
