"""`mace convert --config --device-conf device.yml`: remote targets built through mace.deploy
(the model runs once on each device over ssh; its compiled programs come back into the MACE-named
per-target file and the merged file). Uses the deploy tests' throwaway OpenSSH servers."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from wf_helpers import REPO, copy_example, invoke_json

from mace.programcache.inspect import inspect_file

_DEPLOY_CONFTEST = REPO / "tests" / "deploy" / "conftest.py"


def _load_sshd_fixture():
    try:
        spec = importlib.util.spec_from_file_location("wf_deploy_sshd", _DEPLOY_CONFTEST)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod.sshd
    except Exception:                  # noqa: BLE001 - no deploy test harness: skip below
        return None


_sshd = _load_sshd_fixture()
if _sshd is not None:
    sshd = _sshd
else:
    @pytest.fixture(scope="session")
    def sshd():
        pytest.skip("needs tests/deploy/conftest.py (the throwaway sshd harness)")


def test_remote_target_via_device_conf(sshd, tmp_path):
    pytest.importorskip("mace.deploy.remote")
    cfg = copy_example(tmp_path / "proj")
    conf = sshd.write_conf(tmp_path / "devices.yml", {"board": sshd.device(0, target_socs=["rk3399"],
                                                                           models="Nano Pi M4")})
    doc = invoke_json(["convert", "--config", cfg, "--device-conf", conf, "--target-socs", "rk3399", "--json"])
    remote = doc["remote"]
    assert [d["device"] for d in remote["devices"]] == ["board"]
    per_target = cfg.parent / "build" / "digits" / "opencl" / "digits_compiled_opencl_kernel.NanoPiM4.rk3399.bin"
    assert remote["files"] == [str(per_target)] and per_target.is_file()
    assert doc["targets"] == []                      # no local device is called rk3399
    merged = Path(doc["merged"]["file"])
    info, minfo = inspect_file(per_target), inspect_file(merged)
    assert info["format"] == "mace" and len(info["sections"]) == 1
    n = remote["devices"][0]["models"]["digits_cnn"]["compiled"]
    assert len(minfo["programs"]) == len(info["programs"]) == n > 0
