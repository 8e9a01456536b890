"""Regenerate the full-size ONNX test models from their compact form.

The five reference CNNs (MobileNetV1/V2, ResNet-18, SqueezeNet 1.1,
EfficientNet-Lite0) are too large to keep in the repository with their weights.
``scripts/make_test_models.py`` therefore stores each of them as

* ``tests/models/<name>.onnx``: the exported graph with every initializer that
  has more than 4096 elements stripped of its data (dims and dtype are kept;
  small tensors such as BatchNorm parameters, biases and shape constants stay
  inline).  This file is *not* runnable on its own.
* ``tests/models/<name>.json``: the recipe.  For every stripped initializer:
  ``{name, shape, dtype, seed, mean, std, nonneg, sha256}``; the data is
  ``np.random.default_rng(seed).normal(mean, std, shape)`` (``abs()`` when
  ``nonneg``) cast to ``dtype``.  ``model_sha256`` is the SHA-256 of the
  materialized ONNX file.

:func:`materialize` rebuilds the full model (bit-identical to what the exporter
produced: the exporter was fed these very weights) into a cache directory.
Only numpy and onnx are needed here, no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from mace.fileio import write_atomic

__all__ = ["MODELS_DIR", "available", "default_cache_dir", "materialize", "load_recipe", "build_model"]

#: Where the compact models and their recipes live (override: ``$MACE_TEST_MODELS_DIR``).
MODELS_DIR = Path(
    os.environ.get("MACE_TEST_MODELS_DIR", Path(__file__).resolve().parents[2] / "tests" / "models")
)

#: Initializers with more elements than this are stored as recipes.
COMPACT_THRESHOLD = 4096

_RECIPE_FORMAT = 1


def default_cache_dir() -> Path:
    env = os.environ.get("MACE_TEST_MODEL_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "mace" / "test-models"


def available() -> list[str]:
    """Names of the models that :func:`materialize` can build."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.stem for p in MODELS_DIR.glob("*.json") if (MODELS_DIR / f"{p.stem}.onnx").is_file())


def _paths(name: str) -> tuple[Path, Path]:
    if name not in available():
        raise KeyError(f"unknown test model {name!r}; available: {available()}")
    return MODELS_DIR / f"{name}.onnx", MODELS_DIR / f"{name}.json"


def load_recipe(name: str) -> dict:
    return json.loads(_paths(name)[1].read_text())


def generate_tensor(entry: dict) -> np.ndarray:
    """The data of one stripped initializer, from its recipe entry."""
    rng = np.random.default_rng(int(entry["seed"]))
    arr = rng.normal(float(entry["mean"]), float(entry["std"]), size=tuple(entry["shape"]))
    if entry.get("nonneg", False):
        arr = np.abs(arr)
    return np.ascontiguousarray(arr.astype(np.dtype(entry["dtype"])))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def serialize(model: onnx.ModelProto) -> bytes:
    """Deterministic serialization used both by the generator and by :func:`materialize`."""
    return model.SerializeToString(deterministic=True)


def build_model(compact: onnx.ModelProto, recipe: dict, *, check_tensors: bool = True) -> onnx.ModelProto:
    """Fill the stripped initializers of ``compact`` (modified in place and returned)."""
    entries = {e["name"]: e for e in recipe["initializers"]}
    seen = set()
    for init in compact.graph.initializer:
        entry = entries.get(init.name)
        if entry is None:
            continue
        arr = generate_tensor(entry)
        if list(init.dims) != list(arr.shape):
            raise ValueError(f"{init.name}: recipe shape {arr.shape} != graph dims {list(init.dims)}")
        if check_tensors and entry.get("sha256") and _sha256(arr.tobytes()) != entry["sha256"]:
            warnings.warn(
                f"{recipe.get('name')}: regenerated {init.name} differs from the recipe's checksum "
                "(numpy RNG stream changed?); the weights are still valid random weights",
                RuntimeWarning,
                stacklevel=3,
            )
        init.CopyFrom(numpy_helper.from_array(arr, init.name))
        seen.add(init.name)
    missing = set(entries) - seen
    if missing:
        raise ValueError(f"recipe initializers not found in the graph: {sorted(missing)}")
    return compact


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)


def materialize(name: str, cache_dir: Path | None = None) -> Path:
    """Build the full ONNX model ``name`` into ``cache_dir`` and return its path.

    ``cache_dir`` defaults to ``$MACE_TEST_MODEL_CACHE`` or ``~/.cache/mace/test-models``.
    A cached file is reused when its SHA-256 is the recipe's ``model_sha256`` (or,
    where this numpy/protobuf produces different bytes, the checksum recorded in
    the ``.stamp`` file next to it for the same compact model and recipe).
    """
    onnx_path, json_path = _paths(name)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    out = cache_dir / f"{name}.onnx"
    stamp = cache_dir / f"{name}.onnx.stamp"
    compact_bytes = onnx_path.read_bytes()
    recipe_bytes = json_path.read_bytes()
    source_digest = _sha256(compact_bytes + b"\0" + recipe_bytes)
    recipe = json.loads(recipe_bytes)
    if recipe.get("format") != _RECIPE_FORMAT:
        raise ValueError(f"{json_path}: unsupported recipe format {recipe.get('format')!r}")
    expected = recipe["model_sha256"]

    if out.is_file():
        accepted = {expected}
        try:
            st = json.loads(stamp.read_text())
            if st.get("source_sha256") == source_digest:
                accepted.add(st["model_sha256"])
        except (OSError, ValueError, KeyError):
            pass
        if _file_sha256(out) in accepted:
            return out

    model = build_model(onnx.load_from_string(compact_bytes), recipe)
    data = serialize(model)
    digest = _sha256(data)
    if digest != expected:
        warnings.warn(
            f"materialized {name} has sha256 {digest}, recipe expects {expected} "
            "(different numpy/protobuf serialization?)",
            RuntimeWarning,
            stacklevel=2,
        )
        _atomic_write(stamp, json.dumps({"source_sha256": source_digest, "model_sha256": digest}).encode())
    _atomic_write(out, data)
    return out
