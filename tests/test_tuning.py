"""The tuner: keys, records with evidence, application at init, budget, stale records.

Correctness after tuning is checked against the CPU runtime (atol 1e-4), which is itself
checked against onnxruntime by the op and model tests."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_engine_cache import _model

import mace
from mace.programcache import DeviceFingerprint, ProgramCache
from mace.runtime.opencl.device import select_device
from mace.tuning import tune, tuning_key

BASE = dict(op_type="Conv", in_shapes=[(1, 3, 8, 8), (4, 3, 3, 3)], out_shapes=[(1, 4, 8, 8)],
            attrs={"pads": [1, 1, 1, 1], "strides": [1, 1], "group": 1, "activation": "Relu"},
            data_type="fp32_fp32")


@pytest.mark.parametrize("field, value", [
    ("op_type", "ConvTranspose"),
    ("in_shapes", [(1, 3, 9, 8), (4, 3, 3, 3)]),
    ("out_shapes", [(1, 4, 8, 9)]),
    ("attrs", {**BASE["attrs"], "pads": [0, 1, 1, 1]}),
    ("attrs", {**BASE["attrs"], "strides": [2, 1]}),
    ("attrs", {**BASE["attrs"], "group": 2}),
    ("attrs", {**BASE["attrs"], "activation": "Clip"}),
    ("attrs", {**BASE["attrs"], "activation_params": [0.0, 6.0]}),
    ("data_type", "fp16_fp32"),
])
def test_key_changes_with_every_input(field, value):
    assert tuning_key(**{**BASE, field: value}) != tuning_key(**BASE)
    assert tuning_key(**BASE) == tuning_key(**dict(BASE))


def _lws(engine) -> list:
    return [l.lws for l in engine.executor.launches]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return _model(tmp_path_factory.mktemp("tune") / "m.mace", 3)


@pytest.fixture(scope="module")
def x_and_ref(model):
    x = np.random.default_rng(7).uniform(-1, 1, (1, 3, 12, 12)).astype(np.float32)
    return x, mace.Engine(model, runtime="cpu").run({"x": x})["y"]


@pytest.fixture(scope="module")
def tuned(model, tmp_path_factory):
    prog = tmp_path_factory.mktemp("tuned") / "p.bin"
    engine = mace.Engine(model, runtime="gpu", program=prog, warmup=True)
    result = tune(engine, mode="fast")
    return prog, engine, result


def test_tuned_model_still_matches(tuned, x_and_ref):
    _, engine, result = tuned
    x, ref = x_and_ref
    np.testing.assert_allclose(engine.run({"x": x})["y"], ref, rtol=1e-4, atol=1e-4)
    d = result.to_dict()
    assert d["ops"] and all(o["tuned_ms"] <= o["default_ms"] * 1.5 for o in d["ops"])
    assert d["candidates"] >= len(d["ops"])


def test_records_carry_evidence_and_survive_restart(tuned, x_and_ref):
    prog, engine, result = tuned
    fp = DeviceFingerprint.from_cl_device(select_device())
    recs = ProgramCache.open(prog, device_fp=fp).tuning_records(fp)
    assert set(recs) == {o.key for o in result.ops}
    for rec in recs.values():
        for field in ("variant", "lws", "median_s", "spread_s", "samples", "default_s", "driver", "source_hashes"):
            assert field in rec, field
        assert rec["driver"] == select_device().driver_version and rec["samples"] >= 3
    again = mace.Engine(engine.model_path, runtime="gpu", program=prog)
    assert again.program_cache_report.tuning_hits == len(recs)
    applied = {o.name: [list(l.lws) if l.lws else None for l in again.executor.launches_of(o.name)] for o in result.ops}
    assert applied == {o.name: o.lws for o in result.ops}
    x, ref = x_and_ref
    np.testing.assert_allclose(again.run({"x": x})["y"], ref, rtol=1e-4, atol=1e-4)


def test_records_of_another_fingerprint_are_never_applied(tuned, tmp_path):
    prog, engine, result = tuned
    fp = DeviceFingerprint.from_cl_device(select_device())
    src = ProgramCache.open(prog, device_fp=fp)
    other = dataclasses.replace(fp, device_name="Mali-G78", driver_version="r40p0")
    foreign = tmp_path / "foreign.bin"
    c = ProgramCache.open(foreign, device_fp=other)
    for key, rec in src.tuning_records(fp).items():
        c.put_tuning(other, key, {**rec, "lws": [[1, 1, 1]] * len(rec["lws"]), "driver": other.driver_version})
    c.save()
    e = mace.Engine(engine.model_path, runtime="gpu", program=foreign)
    assert e.program_cache_report.tuning_hits == 0
    assert _lws(e) == _lws(mace.Engine(engine.model_path, runtime="gpu", use_program_cache=False))


def test_stale_driver_record_is_reported_not_applied(tuned, tmp_path):
    prog, engine, _ = tuned
    fp = DeviceFingerprint.from_cl_device(select_device())
    stale = tmp_path / "stale.bin"
    stale.write_bytes(prog.read_bytes())
    c = ProgramCache.open(stale, device_fp=fp)
    for key, rec in c.tuning_records(fp).items():
        c.put_tuning(fp, key, {**rec, "driver": "an older driver", "lws": [[1]] * len(rec["lws"])})
    c.save()
    e = mace.Engine(engine.model_path, runtime="gpu", program=stale)
    codes = [f.code for f in e.program_cache_report.findings]
    assert "TUNING_STALE" in codes
    assert _lws(e) == _lws(mace.Engine(engine.model_path, runtime="gpu", use_program_cache=False))


def test_budget_is_honoured(model, tmp_path):
    engine = mace.Engine(model, runtime="gpu", program=tmp_path / "p.bin", warmup=True)
    res = tune(engine, mode="exhaustive", budget=0.0)
    assert res.untuned_ops == len(engine.executor.op_names()) and not res.ops


def test_mace_tuning_env_tunes_during_a_normal_run(model, tmp_path, monkeypatch):
    monkeypatch.setenv("MACE_TUNING", "1")
    prog = tmp_path / "p.bin"
    engine = mace.Engine(model, runtime="gpu", program=prog)
    assert engine.tuning_result.ops
    fp = DeviceFingerprint.from_cl_device(select_device())
    assert ProgramCache.open(prog, device_fp=fp).tuning_records(fp)
