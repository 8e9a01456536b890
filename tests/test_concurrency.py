"""`Engine.run` from many threads at once: random schedules of threads and inputs on both
runtimes, with one execution context (runs take turns) and with a pool of them; every output
must equal the single-threaded one of its input (rtol 1e-5, atol 1e-6: the same kernels on the
same data). Debian's PoCL 3.1 (another OpenCL implementation, with command buffers) runs the
same schedules in a child process when installed in $MACE_TEST_CMDBUF_ICD (CI: required)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import mace
from mace.convert import convert
from mace.errors import MaceError
from mace.ir import modelfile
from tests.concurrency_child import stress
from tests.test_command_buffer import ICD_DIR, _model

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("concurrency") / "m.mace"
    modelfile.save(convert(_model(np.random.default_rng(7))), path)
    return path


@pytest.mark.parametrize("contexts", [1, 3])
@pytest.mark.parametrize("runtime", ["cpu", "gpu"])
def test_random_schedules_match_single_threaded(model_path, runtime, contexts, rng):
    with mace.Engine(model_path, runtime=runtime, contexts=contexts, use_program_cache=False) as engine:
        report = stress(engine, int(rng.integers(1 << 31)))
        made = engine._made
    assert not report["errors"] and report["n_wrong"] == 0, report
    assert report["runs"] >= 200
    assert 1 <= made <= contexts


def test_other_opencl_implementation_in_child(model_path, rng):
    icd = Path(ICD_DIR)
    if not any(icd.glob("*.icd")):
        if os.environ.get("CI"):
            pytest.fail(f"no second OpenCL implementation in {icd} (CI installs Debian's PoCL there)")
        pytest.skip(f"no second OpenCL implementation in {icd}: apt install pocl-opencl-icd and move "
                    f"/etc/OpenCL/vendors/pocl.icd there")
    env = dict(os.environ, OCL_ICD_VENDORS=str(icd), PYTHONPATH=str(ROOT))
    env.pop("MACE_DEVICE", None)
    for contexts in (1, 3):
        proc = subprocess.run([sys.executable, "-m", "tests.concurrency_child", str(model_path), "gpu",
                               str(contexts), str(int(rng.integers(1 << 31)))], env=env, capture_output=True,
                              text=True, timeout=600, cwd=ROOT)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        assert not report["errors"] and report["n_wrong"] == 0 and report["runs"] >= 200, report
        assert "PoCL 3.1" in report["device"], report


def test_pool_runs_at_once_and_makes_contexts_only_when_needed(model_path):
    """Two threads held inside run() at once need two contexts; one thread never makes a second."""
    with mace.Engine(model_path, runtime="gpu", contexts=4, use_program_cache=False) as engine:
        x = {"x": np.zeros((1, 6, 20, 20), np.float32)}
        for _ in range(5):
            engine.run(x)
        assert engine._made == 1
        inside, go = threading.Barrier(3), threading.Event()
        real = engine._driver_call

        def held(what, fn, *a):
            if what == "run":
                inside.wait(timeout=30)
                go.wait(timeout=30)
            return real(what, fn, *a)
        engine._driver_call = held
        ths = [threading.Thread(target=engine.run, args=(x,)) for _ in range(2)]
        for th in ths:
            th.start()
        inside.wait(timeout=30)    # both threads are running at once
        go.set()
        for th in ths:
            th.join()
        assert engine._made == 2


def test_contexts_must_be_positive(model_path):
    with pytest.raises(MaceError, match="contexts=0"):
        mace.Engine(model_path, runtime="cpu", contexts=0)
