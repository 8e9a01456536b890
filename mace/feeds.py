"""Inputs of a run: reading `.npy` files safely and checking arrays against the model.

One rule set for `mace run --input`, `mace validate --input` and `Engine.run`:

- every name must be an input of the model (a typo is an error, not a silent random input);
- the shape must be the model's; the one tolerated difference is leading dimensions of size 1
  (a (3,224,224) array feeds a (1,3,224,224) input, and the reverse), nothing else is reshaped;
- the values are cast to the input's element type (float32, or the integer/bool type the model
  declares); a cast that changes them is refused: integers beyond 2**24 (float32 holds them only
  approximately), finite values beyond float32's range, and for an integer or bool input any value
  that type does not hold (a fraction, a negative for an unsigned type, one beyond its range);
- only plain numeric arrays: text, object, structured and complex arrays are refused.

A `.npy` file is checked before its data is read: a regular file (a FIFO would hang), not an
`.npz` archive, a numeric dtype, and a header whose element count matches the file's size (a
header declaring 1e12 elements must not allocate them).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from mace import fileio
from mace.errors import InputError

_F32_MAX = float(np.finfo(np.float32).max)
_EXACT_INT = 1 << 24           # float32 represents every integer up to this one exactly
_NUMERIC = "biuf"


def read_npy(path: str | os.PathLike, what: str = "--input") -> np.ndarray:
    """A numeric array from a `.npy` file; InputError (one line: the file and the fix) otherwise."""
    path = Path(path)
    fix = "give a .npy file written by numpy.save of a numeric array"
    try:
        f = fileio.open_regular(path)
    except FileNotFoundError:
        raise InputError(f"{what}: {path}: no such file: {fix}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(6)
        if head[:4] == b"PK\x03\x04":
            raise InputError(f"{path}: an .npz archive, not an .npy file: save each input with "
                             f"numpy.save and pass it as NAME=FILE.npy")
        f.seek(0)
        try:
            version = np.lib.format.read_magic(f)
            reader = {(1, 0): np.lib.format.read_array_header_1_0,
                      (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if reader is None:
                raise ValueError(f"npy format version {version}")
            shape, fortran, dtype = reader(f)
        except Exception as exc:  # noqa: BLE001 - numpy's header parser raises many types on hostile text
            raise InputError(f"{path}: not a readable .npy file ({str(exc).splitlines()[0][:80]}): {fix}") from None
        if dtype.hasobject or dtype.kind not in _NUMERIC or dtype.fields is not None:
            raise InputError(f"{path}: holds {dtype} values, not numbers: {fix}")
        count = 1
        for d in shape:
            count *= d
        need, have = count * dtype.itemsize, size - f.tell()
        if need != have:
            raise InputError(f"{path}: its header declares {count} elements of shape {list(shape)} "
                             f"({need} bytes), the file holds {have} bytes of data: {fix}")
        data = np.fromfile(f, dtype=dtype, count=count)
    return data.reshape(shape, order="F" if fortran else "C")


def read_input_args(items, model_inputs: list[str]) -> dict[str, np.ndarray]:
    """`("NAME=FILE.npy", ...)` -> {name: array}; an unknown NAME is refused before any file is read."""
    pairs = []
    for item in items:
        if "=" not in item:
            raise InputError(f"--input {item!r}: expected NAME=FILE.npy")
        name, path = item.split("=", 1)
        if name not in model_inputs:
            raise InputError(f"--input {item}: the model has no input {name!r} (its inputs: "
                             f"{', '.join(model_inputs)}): fix the name")
        pairs.append((name, path))
    return {name: read_npy(path, f"--input {name}") for name, path in pairs}


def output_file_name(name: str) -> str:
    """`<name>.npy` for an output named in the model file: path separators, control characters
    and NUL become '_' and a leading '.' is prefixed, so the file lands in the output directory
    whatever the name says."""
    safe = re.sub(r"[/\\\x00-\x1f\x7f]", "_", name) or "_"
    return ("_" + safe if safe.startswith(".") else safe) + ".npy"


def _strip_ones(shape) -> tuple[int, ...]:
    shape = tuple(shape)
    while shape and shape[0] == 1:
        shape = shape[1:]
    return shape


def _to_float32(name: str, value) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.hasobject or arr.dtype.kind not in _NUMERIC or arr.dtype.fields is not None:
        raise InputError(f"input {name}: {arr.dtype} values are not numbers: pass a numeric array")
    if arr.dtype.kind in "iu" and arr.dtype.itemsize > 2 and arr.size:
        big = int(np.max(np.abs(arr.astype(np.float64))))
        if big > _EXACT_INT:
            raise InputError(f"input {name}: integer values up to {big} do not fit float32 exactly "
                             f"(above 2**24): scale them, or cast to float32 yourself if that is meant")
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 4 and arr.size:
        finite = arr[np.isfinite(arr)]
        if finite.size and float(np.max(np.abs(finite))) > _F32_MAX:
            raise InputError(f"input {name}: values up to {float(np.max(np.abs(finite))):.3g} are beyond "
                             f"float32's range (±{_F32_MAX:.3g}): scale them")
    return np.asarray(arr, dtype=np.float32)


def _to_type(name: str, value, dtype: str) -> np.ndarray:
    """The value as the input's integer or bool type, refused where the cast would change it."""
    arr = np.asarray(value)
    if arr.dtype.hasobject or arr.dtype.kind not in _NUMERIC or arr.dtype.fields is not None:
        raise InputError(f"input {name}: {arr.dtype} values are not numbers: pass a numeric array")
    want = np.dtype(dtype)
    if arr.dtype == want:
        return arr
    out = arr.astype(want)
    if arr.size and not np.array_equal(out.astype(np.float64) if want.kind != "b" else out,
                                       arr.astype(np.float64) if want.kind != "b" else arr):
        raise InputError(f"input {name}: its {arr.dtype} values do not all fit the model's {want} input: "
                         f"pass {want} values")
    return out


def check_feeds(graph, feeds: dict) -> dict[str, np.ndarray]:
    """The model's inputs as arrays of its shapes and element types, by the rules of this module's
    docstring."""
    unknown = [n for n in feeds if n not in graph.inputs]
    expected = ", ".join(f"{n}{list(graph.shape(n))}" for n in graph.inputs)
    if unknown:
        raise InputError(f"{', '.join(map(str, unknown))}: not an input of the model (it takes {expected}): "
                         f"fix the name")
    missing = [n for n in graph.inputs if n not in feeds]
    if missing:
        raise InputError(f"missing input(s) {', '.join(missing)}: the model takes {expected}")
    out = {}
    for n in graph.inputs:
        dtype = graph.dtypes.get(n, "float32")
        arr = _to_float32(n, feeds[n]) if dtype == "float32" else _to_type(n, feeds[n], dtype)
        want = graph.shape(n)
        if arr.shape != want:
            if _strip_ones(arr.shape) != _strip_ones(want):
                raise InputError(f"input {n} has shape {list(arr.shape)}, the model expects {list(want)}: "
                                 f"pass an array of that shape (only leading 1s may differ)")
            arr = arr.reshape(want)
        out[n] = arr
    return out


__all__ = ["read_npy", "read_input_args", "check_feeds"]
