"""Calibration inputs and range files.

A calibration folder holds `.npy` files (one input's sample, or a batch of them along a leading
dimension; single-input models), `.npz` files (every input by name) or images (.png, .jpg,
.jpeg, .bmp: resized to the input's H x W, gray for one channel, RGB for three, 0..255 mapped
onto the input's range from mace.yml's input_ranges). Range files are MACE's: one
`tensor_name@@min,max` per line (`#` comments), tensor names of the ONNX model.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mace import fileio
from mace.errors import ConversionError, InputError
from mace.feeds import read_npy

IMAGES = (".png", ".jpg", ".jpeg", ".bmp")


def load_inputs(folder: Path, shapes: dict[str, list[int]], ranges: dict, limit: int) -> list[dict]:
    """[{input name: float32 array of its shape}] from a calibration folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--calibration {folder}: no such folder: give a folder of .npy, .npz or image files")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".npy", ".npz") + IMAGES and p.is_file())
    if not files:
        raise InputError(f"--calibration {folder}: holds no .npy, .npz or image files: add some")
    names = list(shapes)
    samples: list[dict] = []
    for path in files:
        if path.suffix.lower() == ".npz":
            samples.append(_npz(path, shapes))
        elif len(names) != 1:
            raise InputError(f"{path}: the model has {len(names)} inputs ({', '.join(names)}): give .npz files "
                             f"holding each input by name")
        elif path.suffix.lower() == ".npy":
            samples += [{names[0]: a} for a in _batch(read_npy(path, "--calibration"), shapes[names[0]], path)]
        else:
            samples.append({names[0]: _image(path, shapes[names[0]], ranges.get(names[0], (0.0, 1.0)))})
        if len(samples) >= limit:
            break
    return samples[:limit]


def _batch(a: np.ndarray, shape: list[int], path: Path) -> list[np.ndarray]:
    shape = list(shape)
    if list(a.shape) == shape:
        return [a.astype(np.float32)]
    if a.ndim == len(shape) and a.shape[1:] == tuple(shape[1:]) and shape[0] == 1:
        return [a[k:k + 1].astype(np.float32) for k in range(a.shape[0])]
    if list(a.shape) == shape[1:] and shape[0] == 1:
        return [a[None].astype(np.float32)]
    raise InputError(f"{path}: shape {list(a.shape)} is not the input's {shape} (or a batch of it): "
                     f"save calibration inputs of the model's input shape")


def _npz(path: Path, shapes: dict) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            got = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - numpy raises several types on a broken archive
        raise InputError(f"{path}: not a readable .npz archive ({type(exc).__name__}): "
                         f"save it with numpy.savez") from None
    missing = [n for n in shapes if n not in got]
    if missing:
        raise InputError(f"{path}: has no array named {missing[0]}: save every input by name (numpy.savez)")
    return {n: _batch(got[n], shapes[n], path)[0] for n in shapes}


def _image(path: Path, shape: list[int], rng) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    if len(shape) != 4 or shape[1] not in (1, 3):
        raise InputError(f"{path}: images calibrate inputs of shape [N, 1 or 3, H, W], this one is {shape}: "
                         f"give .npy files")
    try:
        with Image.open(path) as im:
            im = im.convert("L" if shape[1] == 1 else "RGB").resize((shape[3], shape[2]), Image.BILINEAR)
            pix = np.asarray(im, np.float32)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{path}: not a readable image ({exc}): remove it or convert it to PNG") from None
    pix = pix[None] if pix.ndim == 2 else pix.transpose(2, 0, 1)
    lo, hi = float(rng[0]), float(rng[1])
    return (lo + (hi - lo) * pix / 255.0).astype(np.float32)[None]


def read_ranges(path: Path) -> dict[str, tuple[float, float]]:
    """{tensor: (min, max)} from a MACE range file."""
    data = fileio.read_or_none(Path(path), 64 << 20)
    text = data.decode("utf-8", "replace") if data is not None else None
    if text is None:
        raise ConversionError(f"quantize_range_file {path}: no such file: write one (`name@@min,max` per line) "
                              f"or calibrate with --calibration DIR")
    out = {}
    for k, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, vals = line.rpartition("@@")
        try:
            lo, hi = (float(v) for v in vals.split(","))
        except ValueError:
            lo = hi = math.nan
        if not sep or not name or not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ConversionError(f"quantize_range_file {path}:{k}: expected `tensor_name@@min,max` with finite "
                                  f"min <= max: fix the line")
        out[name] = (lo, hi)
    if not out:
        raise ConversionError(f"quantize_range_file {path}: holds no ranges: calibrate with --calibration DIR")
    return out


def write_ranges(path: Path, ranges: dict) -> None:
    lines = ["# activation ranges (tensor_name@@min,max), written by mace's calibration"]
    lines += [f"{k}@@{float(lo)!r},{float(hi)!r}" for k, (lo, hi) in sorted(ranges.items())]
    fileio.write_atomic(Path(path), ("\n".join(lines) + "\n").encode())
