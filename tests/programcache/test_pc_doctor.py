"""doctor(init_model=...): the caller's model initialization, checked against the file."""
from __future__ import annotations

from mace.programcache import ProgramCache
from mace.programcache.doctor import ModelInit, doctor


def _cache(path, fp, keys):
    c = ProgramCache.open(path, device_fp=fp, log_findings=False)
    for i, k in enumerate(keys):
        c.put_binary(fp, k, b"poclbin\0" + bytes([i]) * 500)
    assert c.save()


def test_init_model_gets_the_file_bytes_and_its_keys_are_required(tmp_path, fp_a):
    path = tmp_path / "c.bin"
    _cache(path, fp_a, ["a|x|1", "b|x|2"])
    seen = []

    def init(blob) -> ModelInit:            # the bytes, with the location they came from
        seen.append(blob)
        return ModelInit(["a|x|1", "b|x|2"], from_cache=2, compiled=0)
    res = doctor(path, fp_a, init_model=init)
    assert [b.data for b in seen] == [path.read_bytes()] and seen[0].location.trusted
    assert res.ok and res.stats["required_missing"] == []
    assert res.stats["model_init"] == {"from_cache": 2, "compiled": 0, "rejected": []}


def test_missing_and_rejected_programs_are_errors(tmp_path, fp_a):
    path = tmp_path / "c.bin"
    _cache(path, fp_a, ["a|x|1"])
    res = doctor(path, fp_a, init_model=lambda blob: ModelInit(
        ["a|x|1", "c|x|3"], from_cache=0, compiled=2,
        rejected=[("a|x|1", "CL_INVALID_BINARY", "the driver said no")]))
    assert not res.ok
    codes = sorted(f.code for f in res.findings if f.severity == "error")
    assert codes == ["CL_INVALID_BINARY", "MISSING_PROGRAMS"]
    rejected = next(f for f in res.findings if f.code == "CL_INVALID_BINARY")
    assert rejected.key == "a|x|1" and "the driver rejected the binary of a|x|1" in rejected.message
    assert res.stats["required_missing"] == ["c|x|3"]
