"""Format 1.1 records: a section's device capabilities and its build failures survive a save,
a reload and a merge with another process's file, and stay bound to their fingerprint."""
from __future__ import annotations

from mace.programcache import ProgramCache
from mace.programcache import format as F
from mace.programcache.maintenance import merge_data


def test_caps_and_build_failures_round_trip(tmp_path, fp_a, fp_b):
    path = tmp_path / "p.bin"
    c = ProgramCache.open(path, device_fp=fp_a)
    c.put_caps(fp_a, {"schema": 1, "max_vector_width": 8, "probe": {"16": "build failed: x"}})
    c.record_build_failure(fp_a, "pool|-DGLOBAL_POOL|abc", {"stage": "kernel", "log": "INVALID_KERNEL_NAME"})
    assert c.save() is True
    back = ProgramCache.open(path, device_fp=fp_a)
    assert back.get_caps(fp_a)["max_vector_width"] == 8
    assert back.build_failure(fp_a, "pool|-DGLOBAL_POOL|abc")["stage"] == "kernel"
    assert back.build_failures(fp_a) == {"pool|-DGLOBAL_POOL|abc": {"stage": "kernel", "log": "INVALID_KERNEL_NAME"}}
    # another driver's section knows nothing of them
    assert back.get_caps(fp_b) is None and back.build_failure(fp_b, "pool|-DGLOBAL_POOL|abc") is None


def test_save_merges_records_of_another_process(tmp_path, fp_a, fp_b):
    path = tmp_path / "p.bin"
    first = ProgramCache.open(path, device_fp=fp_a)
    second = ProgramCache.open(path, device_fp=fp_b)
    first.put_caps(fp_a, {"schema": 1, "max_vector_width": 16})
    second.put_caps(fp_b, {"schema": 1, "max_vector_width": 4})
    second.record_build_failure(fp_b, "k", {"stage": "build"})
    assert first.save() and second.save()
    both = ProgramCache.open(path)
    assert both.get_caps(fp_a)["max_vector_width"] == 16 and both.get_caps(fp_b)["max_vector_width"] == 4
    assert both.build_failure(fp_b, "k") == {"stage": "build"}


def test_merge_data_keeps_newest_caps(fp_a):
    old, new = F.CacheData(sections={fp_a.id: fp_a}), F.CacheData(sections={fp_a.id: fp_a})
    old.caps[(fp_a.id, F.CAPS_KEY)] = F.TuningEntry(fp_a.id, F.CAPS_KEY, {"max_vector_width": 16}, 1)
    new.caps[(fp_a.id, F.CAPS_KEY)] = F.TuningEntry(fp_a.id, F.CAPS_KEY, {"max_vector_width": 8}, 2)
    assert merge_data(old, new).caps[(fp_a.id, F.CAPS_KEY)].record == {"max_vector_width": 8}
    assert merge_data(new, old).caps[(fp_a.id, F.CAPS_KEY)].record == {"max_vector_width": 8}


def test_records_of_a_missing_section_are_dropped(fp_a):
    data = F.CacheData(sections={fp_a.id: fp_a})
    data.build_failures[(fp_a.id, "k")] = F.TuningEntry(fp_a.id, "k", {"stage": "build"}, 1)
    dec = F.decode(F.encode(data))
    assert dec.data.build_failures[(fp_a.id, "k")].record == {"stage": "build"} and not dec.findings
    orphan = F.CacheData(sections={})
    orphan.caps[("0" * 16, F.CAPS_KEY)] = F.TuningEntry("0" * 16, F.CAPS_KEY, {}, 1)
    assert F.decode(F.encode(orphan)).data.caps == {}
