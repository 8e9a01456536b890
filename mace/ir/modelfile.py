"""The .mace model file: graph + weights in one checksummed file, loadable without onnx.

Layout (little-endian):

    0   8   magic b"MACEMODL"
    8   4   u32 format version (MODEL_FORMAT_VERSION)
    12  8   u64 header length H
    20  H   header: UTF-8 JSON {graph..., "weights": [{name, dtype, shape, offset, nbytes}]}
    ..      zero padding to a 64-byte boundary; weights start there (offsets are relative to it)
    end-32  sha256 of every byte before it

Weights are memory-mapped on load (no copy), so opening a large model costs little.
"""
from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
from pathlib import Path

import numpy as np

from mace.errors import ModelFileError
from mace.fileio import write_atomic
from mace.ir.graph import Graph, Node

MAGIC = b"MACEMODL"
MODEL_FORMAT_VERSION = 1
_ALIGN = 64
_PREFIX = struct.Struct("<8sIQ")


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def encode(graph: Graph) -> bytes:
    """Serialize a graph; the trailing sha256 covers the whole content."""
    entries, blobs, offset = [], [], 0
    for name, arr in graph.weights.items():
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
    hbytes = json.dumps(header, separators=(",", ":")).encode()
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


def decode(buf, source="<bytes>") -> Graph:
    """Parse a model from a bytes-like object (bytes or mmap); weights are views into it."""
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
        header = json.loads(bytes(buf[_PREFIX.size:_PREFIX.size + hlen]))
    except ValueError as exc:
        raise _fail(source, f"unreadable header ({exc})") from None
    base = _align(_PREFIX.size + hlen)
    weights = {}
    for w in header["weights"]:
        start = base + w["offset"]
        if start + w["nbytes"] > size - 32:
            raise _fail(source, f"weight {w['name']!r} lies outside the file")
        arr = np.frombuffer(buf, dtype=np.dtype(w["dtype"]), count=int(np.prod(w["shape"], dtype=np.int64)),
                            offset=start).reshape(w["shape"])
        weights[w["name"]] = arr
    return Graph(name=header["name"], nodes=[Node.from_dict(n) for n in header["nodes"]],
                 inputs=header["inputs"], outputs=header["outputs"], shapes=header["shapes"],
                 dtypes=header["dtypes"], weights=weights, meta=header.get("meta", {}))


def load(path: str | os.PathLike) -> Graph:
    """Memory-map and parse a model file; a clear ModelFileError for any problem."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file: convert one with `mace convert model.onnx -o {path}`")
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise _fail(path, "empty file")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    graph = decode(mm, source=path)
    graph.meta["model_sha256"] = bytes(mm[-32:]).hex()
    return graph
