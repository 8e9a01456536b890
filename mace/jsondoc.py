"""The one JSON encoding of mace's documents: `--json` output, result files, reports.

NumPy scalars and arrays, paths and objects with `to_dict()` become plain JSON; anything else
becomes its `str()`, so a result never fails to print.
"""
from __future__ import annotations

import json
from pathlib import PurePath


def jsonable(o):
    """`json.dumps` default hook for the types mace's results hold."""
    import numpy as np
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, PurePath):
        return str(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    return str(o)


def dumps(obj, indent: int | None = 2) -> str:
    """A JSON document (indented for people by default; `indent=None` for one line)."""
    return json.dumps(obj, indent=indent, default=jsonable)
