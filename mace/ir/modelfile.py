"""The .mace model file: graph + weights in one checksummed file, loadable without onnx.

Layout (little-endian):

    0   8   magic b"MACEMODL"
    8   4   u32 format version (MODEL_FORMAT_VERSION)
    12  8   u64 header length H
    20  H   header: UTF-8 JSON {graph..., "weights": [{name, dtype, shape, offset, nbytes}]},
            zlib-compressed from format 3 on (value names repeat across shapes, dtypes and nodes:
            the header of a small 8-bit model was a third of its file)
    ..      zero padding to a 64-byte boundary; weights start there (offsets are relative to it)
    end-32  sha256 of every byte before it

Weights are memory-mapped on load (no copy), so opening a large model costs little.
"""
from __future__ import annotations

import hashlib
import json
import math
import mmap
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from mace import fileio
from mace.errors import ModelFileError
from mace.fileio import write_atomic
from mace.ir import quantized as storage
from mace.ir.graph import Graph, Node

MAGIC = b"MACEMODL"
MODEL_FORMAT_VERSION = 3  # 2: 8-bit weights (meta.quantized_weights); 3: compressed header (every file)
_MAX_HEADER = 256 << 20    # decompressed header bytes: a crafted file cannot make the reader allocate more
_ALIGN = 64
_PREFIX = struct.Struct("<8sIQ")


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def encode(graph: Graph) -> bytes:
    """Serialize a graph; the trailing sha256 covers the whole content."""
    entries, blobs, offset = [], [], 0
    for name, arr in storage.pack(graph).items():
        arr = np.ascontiguousarray(arr)
        entries.append({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape),
                        "offset": offset, "nbytes": arr.nbytes})
        blobs.append(arr.tobytes())
        pad = _align(arr.nbytes) - arr.nbytes
        blobs.append(b"\0" * pad)
        offset += arr.nbytes + pad
    header = {
        "name": graph.name,
        "inputs": graph.inputs,
        "outputs": graph.outputs,
        "shapes": graph.shapes,
        "dtypes": graph.dtypes,
        "meta": graph.meta,
        "nodes": [n.to_dict() for n in graph.nodes],
        "weights": entries,
    }
    hbytes = zlib.compress(json.dumps(header, separators=(",", ":")).encode(), 9)
    head = _PREFIX.pack(MAGIC, MODEL_FORMAT_VERSION, len(hbytes)) + hbytes
    head += b"\0" * (_align(len(head)) - len(head))
    body = head + b"".join(blobs)
    return body + hashlib.sha256(body).digest()


def save(graph: Graph, path: str | os.PathLike) -> str:
    """Write atomically; returns the content sha256 (hex)."""
    data = encode(graph)
    write_atomic(Path(path), data)
    return data[-32:].hex()


def _fail(path, what: str) -> ModelFileError:
    return ModelFileError(f"{path}: {what}: regenerate it with `mace convert`")


def _is_str_list(v) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_dims(v) -> bool:
    return isinstance(v, list) and all(type(d) is int and 0 <= d < 1 << 40 for d in v)


def _check_header(h, source) -> None:
    """Every field a loader or an executor reads, with its type: a crafted header (the checksum
    guards only against damage: anyone can recompute it) fails here with one typed error, not
    with a KeyError or TypeError deep in a runtime."""
    if not isinstance(h, dict):
        raise _fail(source, "the header is not a JSON object")
    for key, ok in (("name", lambda v: isinstance(v, str)), ("inputs", _is_str_list),
                    ("outputs", _is_str_list), ("shapes", lambda v: isinstance(v, dict)),
                    ("dtypes", lambda v: isinstance(v, dict)), ("nodes", lambda v: isinstance(v, list)),
                    ("weights", lambda v: isinstance(v, list)), ("meta", lambda v: isinstance(v, dict))):
        if key not in h and key != "meta":
            raise _fail(source, f"the header has no {key!r}")
        if key in h and not ok(h[key]):
            raise _fail(source, f"the header's {key!r} has the wrong type")
    for name, dims in h["shapes"].items():
        if not _is_dims(dims):
            raise _fail(source, f"shape of {name!r} is not a list of non-negative integers")
    for name, dt in h["dtypes"].items():
        if not isinstance(dt, str) or _numeric_dtype(dt) is None:
            raise _fail(source, f"dtype of {name!r} is not a numeric dtype")
    for i, n in enumerate(h["nodes"]):
        if not (isinstance(n, dict) and isinstance(n.get("name"), str) and isinstance(n.get("op_type"), str)
                and _is_str_list(n.get("inputs")) and _is_str_list(n.get("outputs"))
                and isinstance(n.get("attrs", {}), dict)):
            raise _fail(source, f"node {i} is not {{name, op_type, inputs, outputs, attrs}}")
        for v in n["inputs"] + n["outputs"]:
            if v and v not in h["shapes"]:
                raise _fail(source, f"node {n['name']!r} uses {v!r}, which has no shape")
    for v in h["inputs"] + h["outputs"]:
        if v not in h["shapes"]:
            raise _fail(source, f"graph input/output {v!r} has no shape")
    _check_meta(h.get("meta", {}), source)


def _finite(x) -> bool:
    return type(x) in (int, float) and math.isfinite(x)


def _check_meta(meta: dict, source) -> None:
    """The meta fields that runs read: data type, input ranges, validation thresholds."""
    if meta.get("data_type", "fp32_fp32") not in ("fp32_fp32", "fp16_fp32"):
        raise _fail(source, "meta.data_type is not fp32_fp32 or fp16_fp32")
    ranges = meta.get("input_ranges", {})
    if not isinstance(ranges, dict) or not all(
            isinstance(r, list) and len(r) == 2 and all(_finite(x) for x in r) and r[0] <= r[1]
            for r in ranges.values()):
        raise _fail(source, "meta.input_ranges is not {input: [low, high]} of finite numbers")
    th = meta.get("validation_threshold", {})
    if not isinstance(th, dict) or not all(_finite(x) for x in th.values()):
        raise _fail(source, "meta.validation_threshold is not {runtime: number}")


def _numeric_dtype(text: str):
    try:
        dt = np.dtype(text)
    except (TypeError, ValueError):
        return None
    return dt if dt.kind in "biuf" and not dt.hasobject and dt.fields is None else None


def _weight(buf, w, base: int, end: int, source) -> np.ndarray:
    if not (isinstance(w, dict) and isinstance(w.get("name"), str) and isinstance(w.get("dtype"), str)
            and _is_dims(w.get("shape")) and type(w.get("offset")) is int and type(w.get("nbytes")) is int):
        raise _fail(source, "a weight entry is not {name, dtype, shape, offset, nbytes}")
    name, dt = w["name"], _numeric_dtype(w["dtype"])
    if dt is None:
        raise _fail(source, f"weight {name!r} has dtype {w['dtype'][:20]!r}, not a numeric dtype")
    count = 1
    for d in w["shape"]:
        count *= d
    if w["offset"] < 0 or w["nbytes"] != count * dt.itemsize:
        raise _fail(source, f"weight {name!r}: offset {w['offset']} / {w['nbytes']} bytes do not fit "
                            f"its shape {w['shape']} and dtype")
    start = base + w["offset"]
    if start + w["nbytes"] > end:
        raise _fail(source, f"weight {name!r} lies outside the file")
    return np.frombuffer(buf, dtype=dt, count=count, offset=start).reshape(w["shape"])


def _header_text(raw: bytes, version: int, source) -> bytes:
    """The JSON bytes of a header: as stored before format 3, inflated (bounded) from it on."""
    if version < 3:
        return raw
    inflate = zlib.decompressobj()
    try:
        text = inflate.decompress(raw, _MAX_HEADER)
    except zlib.error:
        raise _fail(source, "the header does not decompress") from None
    if inflate.unconsumed_tail or not inflate.eof:
        raise _fail(source, f"the header is truncated or inflates beyond {_MAX_HEADER >> 20} MiB")
    return text


def decode(buf, source="<bytes>") -> Graph:
    """Parse a model from a bytes-like object (bytes or mmap); weights are views into it.
    Anything but an intact model of a known version raises ModelFileError, and only that."""
    size = len(buf)
    if size < _PREFIX.size + 32:
        raise _fail(source, f"not a mace model file (only {size} bytes)")
    magic, version, hlen = _PREFIX.unpack_from(buf, 0)
    if magic != MAGIC:
        raise _fail(source, "not a mace model file (bad magic number)")
    if version > MODEL_FORMAT_VERSION:
        raise ModelFileError(f"{source}: model format {version} is newer than this mace reads "
                             f"({MODEL_FORMAT_VERSION}): upgrade mace")
    if hashlib.sha256(memoryview(buf)[: size - 32]).digest() != bytes(buf[size - 32:]):
        raise _fail(source, "checksum mismatch (the file is truncated or corrupted)")
    if _PREFIX.size + hlen > size - 32:
        raise _fail(source, "header length exceeds the file")
    try:
        header = json.loads(_header_text(bytes(buf[_PREFIX.size:_PREFIX.size + hlen]), version, source))
    except (ValueError, RecursionError) as exc:
        raise _fail(source, f"unreadable header ({type(exc).__name__})") from None
    _check_header(header, source)
    base = _align(_PREFIX.size + hlen)
    weights = {}
    for w in header["weights"]:
        weights[w["name"] if isinstance(w, dict) else ""] = _weight(buf, w, base, size - 32, source)
    meta = header.get("meta", {})
    storage.check(meta, weights, lambda what: _fail(source, what))
    weights = storage.unpack(meta, weights)
    return Graph(name=header["name"], nodes=[Node.from_dict(n) for n in header["nodes"]],
                 inputs=header["inputs"], outputs=header["outputs"], shapes=header["shapes"],
                 dtypes=header["dtypes"], weights=weights, meta=header.get("meta", {}))


def load(path: str | os.PathLike) -> Graph:
    """Memory-map and parse a model file; a clear ModelFileError for any problem."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file: convert one with `mace convert model.onnx -o {path}`")
    try:
        f = fileio.open_regular(path)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file: convert one with "
                             f"`mace convert model.onnx -o {path}`") from None
    except fileio.FileRefused:
        raise
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    with f:
        if os.fstat(f.fileno()).st_size == 0:
            raise _fail(path, "empty file")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    graph = decode(mm, source=path)
    graph.meta["model_sha256"] = bytes(mm[-32:]).hex()
    return graph
