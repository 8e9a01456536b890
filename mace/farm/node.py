"""What a farm job reports about where it ran and what it made (shared by job.py, boards.py and
verify.py)."""
from __future__ import annotations

from pathlib import Path


def node_id() -> str:
    """The Ray node this job runs on (empty outside Ray)."""
    import sys
    ray = sys.modules.get("ray")             # a Ray worker has it imported; elsewhere it is not
    try:
        return (ray.get_runtime_context().get_node_id() or "") if ray is not None else ""
    except Exception:            # noqa: BLE001 - not in a Ray worker
        return ""


def section_of(program: Path, fp_id: str) -> tuple[bytes, int]:
    """Section `fp_id` of program file `program` as a file of its own (bytes), and its programs."""
    from mace.programcache.format import CacheData, decode, encode
    from mace.programcache.merge import merge_into
    data = merge_into(CacheData(), decode(program.read_bytes(), str(program)).data, sections=[fp_id])
    return encode(data), sum(1 for f, _ in data.programs if f == fp_id)


__all__ = ["node_id", "section_of"]
