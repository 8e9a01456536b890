"""Engines release their device memory at once: `close()`, `with`, or dropping the last reference
(no reference cycles: checked with the cyclic garbage collector switched off); what engines of
one process share (context, programs, device weights) is shared."""
from __future__ import annotations

import gc
import threading
import weakref

import numpy as np
import pytest

import mace
from mace.convert import convert
from mace.errors import MaceError
from mace.ir import modelfile
from mace.runtime.opencl.shared import device_bytes
from tests.test_command_buffer import _model

X = {"x": np.ones((1, 6, 20, 20), np.float32)}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("release") / "m.mace"
    modelfile.save(convert(_model(np.random.default_rng(3))), path)
    return path


@pytest.fixture
def no_gc():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _bytes() -> int:
    return device_bytes()["bytes"]


@pytest.mark.parametrize("runtime", ["gpu", "cpu+gpu", "cpu"])
def test_del_frees_the_engine_without_the_garbage_collector(model_path, runtime, no_gc):
    base = _bytes()
    engine = mace.Engine(model_path, runtime=runtime, use_program_cache=False)
    engine.run(X)
    if runtime != "cpu":
        assert _bytes() > base
    executor = weakref.ref(engine.executor)
    del engine
    assert executor() is None, gc.get_referrers(executor())
    assert _bytes() == base


def test_churn_returns_device_memory_to_its_baseline(model_path, no_gc):
    base = _bytes()
    for i in range(12):
        if i % 3 == 0:
            engine = mace.Engine(model_path, runtime="gpu", use_program_cache=False, contexts=2)
            ths = [threading.Thread(target=engine.run, args=(X,)) for _ in range(3)]
            for th in ths:
                th.start()
            for th in ths:
                th.join()
            del engine, ths, th
        elif i % 3 == 1:
            with mace.Engine(model_path, runtime="gpu", use_program_cache=False) as engine:
                engine.run(X)
            assert _bytes() == base    # at the end of the with block, the engine still referenced
        else:
            engine = mace.Engine(model_path, runtime="gpu", use_program_cache=False)
            engine.run(X)
            engine.close()
            assert _bytes() == base
            del engine
        assert _bytes() == base, i


def test_closed_engine_refuses_runs_and_close_is_idempotent(model_path):
    engine = mace.Engine(model_path, runtime="gpu", use_program_cache=False)
    engine.run(X)
    engine.close()
    engine.close()
    assert engine.closed
    with pytest.raises(MaceError, match="is closed: make a new mace.Engine"):
        engine.run(X)


def test_close_waits_for_runs_in_flight(model_path):
    engine = mace.Engine(model_path, runtime="gpu", use_program_cache=False, contexts=2)
    want = engine.run(X)["y"]
    started, results = threading.Event(), []
    real = engine._driver_call

    def slow(what, fn, *a):
        started.set()
        threading.Event().wait(0.3)
        return real(what, fn, *a)
    engine._driver_call = slow
    th = threading.Thread(target=lambda: results.append(engine.run(X)["y"]))
    th.start()
    started.wait(10)
    engine.close()
    th.join()
    np.testing.assert_array_equal(results[0], want)


def test_engines_of_one_model_share_context_programs_and_weights(model_path, tmp_path, no_gc):
    from mace.runtime.opencl import shared
    shared.forget_programs()
    base = _bytes()
    a = mace.Engine(model_path, runtime="gpu", program=tmp_path / "p.bin")
    a.run(X)
    one = _bytes() - base
    slots_a = sum(s.size for s in a.executor.slots)
    b = mace.Engine(model_path, runtime="gpu", program=tmp_path / "p.bin")
    b.run(X)
    assert a.executor.ctx is b.executor.ctx
    ra, rb = a.program_cache_report, b.program_cache_report     # b's cache file holds a's binaries now
    assert ra.compiled + ra.from_cache >= 3 and (rb.compiled, rb.from_cache) == (0, ra.compiled + ra.from_cache)
    c = mace.Engine(model_path, runtime="gpu", use_program_cache=False)   # no cache: the last built
    built_a, built_c = b.executor.builder._built, c.executor.builder._built
    assert set(built_c) <= set(built_a) and all(built_c[k] is built_a[k] for k in built_c)
    assert c.executor.builder.compile_seconds == 0
    c.close()
    slots = sum(s.size for s in b.executor.slots)
    assert _bytes() - base == one + slots       # the second engine's weights are the first one's
    np.testing.assert_array_equal(a.run(X)["y"], b.run(X)["y"])
    a.close()
    assert _bytes() - base == one - slots_a + slots    # b keeps the weights
    b.close()
    assert _bytes() == base
