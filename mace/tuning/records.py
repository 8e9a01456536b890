"""Tuning keys and records.

Key: op type + input/output shapes + every attribute that shapes the generated code or the
launch + the data type (the build options and global sizes follow from these). The kernel
source hashes and the driver version are stored in the record, not the key, so a record whose
source or driver changed is recognized as stale and reported instead of silently missing or,
worse, applied blindly (tinygrad #11908 is the cautionary tale of a key that missed an input).
"""
from __future__ import annotations

import hashlib
import json

_IGNORED_ATTRS = {"name"}


def tuning_key(op_type: str, in_shapes, out_shapes, attrs: dict, data_type: str) -> str:
    canon = json.dumps([op_type, [list(s) for s in in_shapes], [list(s) for s in out_shapes],
                        {k: attrs[k] for k in sorted(attrs) if k not in _IGNORED_ATTRS}, data_type],
                       sort_keys=True, default=str)
    digest = hashlib.sha256(canon.encode()).hexdigest()[:16]
    out = "x".join(str(d) for d in out_shapes[0]) if out_shapes else ""
    return f"{op_type}:{out}:{data_type}:{digest}"


def op_key(op, data_type: str) -> str:
    return tuning_key(op.node.op_type, op.in_shapes, op.out_shapes, {**op.node.attrs, **op.tuning_attrs}, data_type)


def source_hashes(launches) -> list[str]:
    """The kernel-source part of each launch's program key (`name|options|srchash`)."""
    return sorted({l.program_key.rsplit("|", 1)[-1] for l in launches if l.program_key})


def lws_problem(lws, launches, device) -> str | None:
    """Why stored local sizes cannot be applied to `launches` on `device`, or None. A tuning
    record is data from a file that may not be trusted: each size must be a list of positive
    integers, one per global dimension, dividing the global size, within the device's limits."""
    if not isinstance(lws, list) or len(lws) != len(launches):
        return "launch count changed"
    max_group = int(getattr(device, "max_work_group_size", 0) or 0)
    max_items = list(getattr(device, "max_work_item_sizes", []) or [])
    for w, l in zip(lws, launches):
        if w is None:
            continue
        if (not isinstance(w, list) or len(w) != len(l.gws)
                or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in w)):
            return f"local size {str(w)[:40]} out of range"
        if any(g % x for g, x in zip(l.gws, w)):
            return f"local size {w} does not divide the global size {list(l.gws)}"
        total = 1
        for x in w:
            total *= x
        if (max_group and total > max_group) or any(
                i < len(max_items) and x > max_items[i] for i, x in enumerate(w)):
            return f"local size {w} exceeds the device's limits"
    return None
