"""A hostile board against `mace deploy` (real sshd, tests/deploy/conftest.py).

The board's "python" is a wrapper that runs mace and then plants, in the program file it sends
back, a section for another device ("the host") holding a native binary. Only the board's own
section may come back, marked with its origin; the planted one is dropped; and even the
board's own binaries (here the same PoCL device as this host, so the same fingerprint) never
reach this host's driver without a trusted signature. The board gets back only what came from it.
"""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import mace
from mace.deploy.remote import run_remote
from mace.programcache import ProgramCache, signing
from mace.programcache import format as F
from mace.programcache.fingerprint import DeviceFingerprint

PLANT = """
import hashlib
from mace.programcache import format as F
from mace.programcache.fingerprint import DeviceFingerprint
p = "mace-cl-compiled-program.bin"
d = F.decode(open(p, "rb").read()).data
fp = DeviceFingerprint(device_name="the host, says the board", driver_version="1")
d.sections[fp.id] = fp
blob = b"\\x7fELF planted"
d.programs[(fp.id, "k|x|0")] = F.ProgramEntry(fp.id, "k|x|0", blob, hashlib.sha256(blob).digest(), 1, 1)
open(p, "wb").write(F.encode(d))
"""


@pytest.fixture
def hostile(sshd, tmp_path):
    plant = tmp_path / "plant.py"
    plant.write_text(PLANT)
    wrapper = tmp_path / "hostile-python.sh"
    wrapper.write_text(f'#!/bin/sh\n"{sys.executable}" "$@"\nrc=$?\n'
                       f'if [ "$3" = run ]; then "{sys.executable}" {plant}; fi\nexit $rc\n')
    wrapper.chmod(0o755)
    conf = sshd.write_conf(tmp_path / "device.yml", {"board": sshd.device(
        0, workdir=tmp_path / "board", python=str(wrapper))})
    return {"conf": conf, "planted": DeviceFingerprint(device_name="the host, says the board",
                                                       driver_version="1").id}


def test_device_pull_takes_only_the_devices_own_section(hostile, digits, tmp_path, monkeypatch):
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    monkeypatch.setenv("MACE_TRUSTED_KEYS", str(keys / "trusted_keys"))
    program = tmp_path / "host" / "p.bin"
    program.parent.mkdir()
    run = dict(runtime="gpu", inputs=[f"{digits['input_name']}={digits['x']}"])
    r = run_remote(hostile["conf"], "board", digits["model"], program=program,
                   output_dir=tmp_path / "out1", **run)
    own = r["run"]["summary"]["device_fingerprint"]
    p = r["program"]
    assert p["dropped_sections"] == [hostile["planted"]] and [s["id"] for s in p["sections"]] == [own]
    assert any(f["code"] == "FOREIGN_SECTION" for f in p["findings"])
    assert p["origin"]["device"] == "board"

    data = F.decode(program.read_bytes()).data
    assert list(data.sections) == [own]
    assert data.programs and all(e.meta["origin"]["device"] == "board" for e in data.programs.values())

    # the next deploy sends the board its own section only (origin marks removed), and it
    # loads from it
    r = run_remote(hostile["conf"], "board", digits["model"], program=program,
                   output_dir=tmp_path / "out2", **run)
    assert r["program"]["uploaded"]
    pc = r["run"]["summary"]["program_cache"]
    assert pc["from_cache"] > 0 and pc["untrusted"] == 0, pc
    sent = F.decode((tmp_path / "board" / "digits" / "mace-cl-compiled-program.bin").read_bytes()).data
    assert own in sent.sections

    pulled = tmp_path / "host" / "pulled.bin"
    pulled.write_bytes(program.read_bytes())

    # this host runs the same PoCL device: the board's binaries are for it, yet never loaded
    x = np.load(digits["x"])
    e = mace.Engine(digits["model"], runtime="gpu", program=program)
    assert e.program_section.id == own
    np.testing.assert_allclose(e.run({digits["input_name"]: x})[next(iter(digits["ref"]))],
                               next(iter(digits["ref"].values())), atol=1e-4, rtol=1e-4)
    rep = e.program_cache_report
    assert rep.from_cache == 0 and rep.untrusted >= 1
    assert "came from elsewhere" in " ".join(f.message for f in rep.findings if f.code == "UNTRUSTED")

    # signed by a trusted key, the pulled binaries are this host's to load
    assert all("origin" in e.meta for e in F.decode(pulled.read_bytes()).data.programs.values())
    pub = signing.write_key_pair(keys / "farm.pem")
    signing.add_trusted(pub)
    signing.sign_file(pulled, keys / "farm.pem")
    e = mace.Engine(digits["model"], runtime="gpu", program=pulled)
    assert e.program_cache_report.from_cache > 0 and e.program_cache_report.untrusted == 0


def test_a_host_section_is_never_uploaded(sshd, digits, tmp_path):
    """The host's own section (built here) stays here: the board learns nothing of it."""
    program = tmp_path / "p.bin"
    mace.Engine(digits["model"], runtime="gpu", program=program, warmup=True)
    host = set(F.decode(program.read_bytes()).data.sections)
    assert host
    conf = sshd.write_conf(tmp_path / "device.yml", {"b": sshd.device(0, workdir=tmp_path / "b")})
    r = run_remote(conf, "b", digits["model"], program=program, runtime="gpu",
                   inputs=[f"{digits['input_name']}={digits['x']}"], output_dir=tmp_path / "out")
    assert r["ok"] and not r["program"]["uploaded"]
    pulled = json.dumps(r["program"]["sections"])
    assert r["run"]["summary"]["program_cache"]["from_cache"] == 0, pulled
    c = ProgramCache.open(program)
    assert set(c.data.sections) == host                 # the same fingerprint: one section
