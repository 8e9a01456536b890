"""The trust policy end to end, through the engine on the real OpenCL device: which cached
binaries reach the driver. Every case checks the outputs against the CPU runtime.

trusted location -> loaded; untrusted location, unsigned -> rebuilt; signed by a trusted key ->
loaded; signed by an unknown key -> rebuilt; tampered after signing -> that binary rebuilt;
a binary that kills the process while it is loaded or first launched -> quarantined by the next
start. (A device pull: tests/deploy/test_deploy_trust.py, against a real sshd.)
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import mace
from mace.cli import cli
from mace.convert import convert
from mace.programcache import ProgramCache, signing
from mace.programcache import format as F


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 12])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = rng.uniform(-1, 1, (8, 3, 3, 3)).astype(np.float32)
    b = rng.uniform(-1, 1, (8, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Add", ["r", "b"], ["y"])]
    g = helper.make_graph(nodes, "m", [x], [y], [numpy_helper.from_array(w, "w"),
                                                 numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = tmp_path_factory.mktemp("trust") / "m.mace"
    convert(m, path)
    return path


@pytest.fixture(scope="module")
def reference(model):
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 12, 12)).astype(np.float32)
    return x, mace.Engine(model, runtime="cpu").run({"x": x})["y"]


@pytest.fixture(scope="module")
def built(model, reference, tmp_path_factory):
    """A program file holding every binary of the model (built once: programs that engines of
    earlier tests left in this process are forgotten first, as a new process would start)."""
    from mace.runtime.opencl import shared
    shared.forget_programs()
    path = tmp_path_factory.mktemp("built") / "p.bin"
    e = _run(model, reference, path)
    e.close()                   # its binaries are in the file once the background harvest ends
    assert e.program_cache_report.compiled >= 2
    return path, e.program_cache_report.compiled


@pytest.fixture
def keys(tmp_path, monkeypatch):
    home = tmp_path / "keys"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("MACE_TRUSTED_KEYS", str(home / "trusted_keys"))
    signing.add_trusted(signing.write_key_pair(home / "farm.pem"), home / "trusted_keys")
    signing.write_key_pair(home / "stranger.pem")
    return {"trusted": home / "farm.pem", "stranger": home / "stranger.pem"}


@pytest.fixture
def public(tmp_path):
    d = tmp_path / "public"          # world-writable, no sticky bit: public storage
    d.mkdir()
    d.chmod(0o777)
    return d


def _run(model, reference, program):
    x, want = reference
    e = mace.Engine(model, runtime="gpu", program=program)
    np.testing.assert_allclose(e.run({"x": x})["y"], want, rtol=1e-4, atol=1e-4)
    return e


def _copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


def _counts(e):
    r = e.program_cache_report
    return r.from_cache, r.compiled, r.untrusted


def test_trusted_location_loads(model, reference, built, tmp_path, keys):
    src, n = built
    e = _run(model, reference, _copy(src, tmp_path / "p.bin"))
    assert _counts(e) == (n, 0, 0)
    assert e.program_cache_report.trust["location"] == "trusted"


def test_untrusted_location_unsigned_is_rebuilt(model, reference, built, public, keys):
    src, n = built
    e = _run(model, reference, _copy(src, public / "p.bin"))
    assert _counts(e) == (0, n, n)
    line = e.program_cache_report.summary_line()
    assert f"{n} untrusted" in line and "UNTRUSTED" in line
    why = [f.message for f in e.program_cache_report.findings if f.code == "UNTRUSTED"]
    assert "writable by others" in why[0]


def test_signed_by_a_trusted_key_loads(model, reference, built, public, keys):
    src, n = built
    path = _copy(src, public / "p.bin")
    signing.sign_file(path, keys["trusted"])
    assert _counts(_run(model, reference, path)) == (n, 0, 0)


def test_signed_by_an_unknown_key_is_rebuilt(model, reference, built, public, keys):
    src, n = built
    path = _copy(src, public / "p.bin")
    signing.sign_file(path, keys["stranger"])
    e = _run(model, reference, path)
    assert _counts(e) == (0, n, n)
    assert "SIGNATURE_INVALID" in {f.code for f in e.program_cache_report.findings}


def test_tampered_after_signing_is_rebuilt(model, reference, built, public, keys):
    """An attacker swaps one valid binary for another program's and fixes every checksum."""
    src, n = built
    path = _copy(src, public / "p.bin")
    signing.sign_file(path, keys["trusted"])
    dec = F.decode(path.read_bytes())
    (k1, a), (k2, b) = sorted(dec.data.programs.items())[:2]
    a.blob, a.sha256 = b.blob, hashlib.sha256(b.blob).digest()
    path.write_bytes(F.encode(dec.data))
    r = CliRunner().invoke(cli, ["cache", "verify", str(path)])
    assert r.exit_code == 1 and "not covered by its signature" in r.output
    assert _counts(_run(model, reference, path)) == (n - 1, 1, 1)


def test_bundle_bytes_need_a_signature(model, reference, built, keys):
    from mace import bundle
    src, n = built
    blob = bundle.encode(model.read_bytes(), src.read_bytes(), name="m")
    e = mace.Engine.from_bundle(blob, runtime="gpu")
    assert _counts(e)[2] == n and e.program_cache_report.from_cache == 0
    signed = src.with_name("signed.bin")
    _copy(src, signed)
    signing.sign_file(signed, keys["trusted"])
    e = mace.Engine.from_bundle(bundle.encode(model.read_bytes(), signed.read_bytes(), name="m"))
    x, want = reference
    np.testing.assert_allclose(e.run({"x": x})["y"], want, rtol=1e-4, atol=1e-4)
    assert e.program_cache_report.from_cache == n


# {{{ bad --program paths through the CLI

def test_cli_program_dev_null_is_refused(model):
    r = CliRunner().invoke(cli, ["run", str(model), "--program", "/dev/null"])
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [
        "error: program cache /dev/null is a character device, not a regular file: refused (it is "
        "never read or replaced): pass a regular file or a new path"]
    assert Path("/dev/null").is_char_device()


def test_cli_program_that_is_the_model_is_refused(model, tmp_path):
    before = model.read_bytes()
    r = CliRunner().invoke(cli, ["run", str(model), "--program", str(model)])
    assert r.exit_code == 2 and "is not a mace program cache" in r.output and "Traceback" not in r.output
    assert model.read_bytes() == before and not model.with_name(model.name + ".corrupt").exists()

# }}}


# {{{ the crash journal through the engine

_CHILD = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import pyopencl as cl
    import mace
    phase = sys.argv[3]
    if phase == "load":
        real = cl.Program
        def program(ctx, *args):
            if len(args) == 2:                 # (devices, binaries): a cached binary
                os.kill(os.getpid(), signal.SIGKILL)
            return real(ctx, *args)
        cl.Program = program
    else:
        real_enqueue = cl.enqueue_nd_range_kernel
        def enqueue(q, kernel, *args, **kw):
            os.kill(os.getpid(), signal.SIGKILL)
        cl.enqueue_nd_range_kernel = enqueue
    e = mace.Engine(sys.argv[1], runtime="gpu", program=sys.argv[2])
    e.run({"x": np.zeros((1, 3, 12, 12), np.float32)})
""")


@pytest.mark.parametrize("phase", ["load", "launch"])
def test_binary_that_kills_the_process_is_quarantined(model, reference, built, tmp_path, phase):
    src, n = built
    path = _copy(src, tmp_path / "p.bin")
    p = subprocess.run([sys.executable, "-c", _CHILD, str(model), str(path), phase],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == -9, p.stderr[-2000:]
    e = _run(model, reference, path)             # the next start
    r = e.program_cache_report
    assert (r.from_cache, r.compiled) == (n - 1, 1)
    crashed = [f for f in r.findings if f.code == "QUARANTINED"]
    assert len(crashed) == 1 and ("loading" if phase == "load" else "first launching") in crashed[0].message
    assert not list(tmp_path.glob("p.bin.journal-*"))
    c = ProgramCache.open(path, device_fp=e.program_section.fp)
    assert [k for (_, k) in c.data.quarantine] == [crashed[0].key]
    r = _run(model, reference, path).program_cache_report          # stays quarantined
    assert r.from_cache == n - 1 and r.compiled + r.shared == 1 and r.untrusted == 0

# }}}
