"""PyTorch models: a torch.export program (.pt2), a TorchScript file, or `module:callable`.

Exported to ONNX by torch.onnx (TorchScript-based exporter: it takes all three forms, needs no
extra package and wrote the models tried exactly; torch.onnx's dynamo path needs onnxscript).
Inputs and outputs are NCHW, as PyTorch's are; their names are mace.yml's input_tensors /
output_tensors (default input, input_1, ... / output, output_1, ...).
"""
from __future__ import annotations

import importlib
import io
import logging
import sys
import warnings
import zipfile
from pathlib import Path

from mace.convert.sources import CALLABLE_RE, Imported, require
from mace.convert.sources.shapes import in_source_layout, layout_of
from mace.errors import ConversionError

log = logging.getLogger("mace.convert")
OPSET = 17


def load_module(spec):
    """(module in eval mode, example inputs or None) for the three forms."""
    torch = require("torch", "torch", spec.path)
    text = str(spec.path)
    if not Path(text).exists() and CALLABLE_RE.match(text):
        return _from_callable(text), None
    try:
        names = zipfile.ZipFile(text).namelist()
    except (zipfile.BadZipFile, OSError):
        raise ConversionError(f"{text}: not a PyTorch archive (torch.export .pt2 or TorchScript): "
                              f"save it with torch.export.save or torch.jit.save") from None
    try:
        if any(n.endswith("serialized_exported_program.json") or "/models/" in n for n in names):
            ep = torch.export.load(text)
            args = getattr(ep, "example_inputs", None)
            return ep.module(), (list(args[0]) if args else None)
        return torch.jit.load(text, map_location="cpu").eval(), None
    except ConversionError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError and others for a bad archive
        raise ConversionError(f"{text}: PyTorch cannot load it ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:120] if str(exc) else ''}): re-save the model") from None


def _from_callable(text: str):
    mod_name, _, attr = text.partition(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")                 # `mymodels:build` from the working directory, like python -m
    try:
        factory = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConversionError(f"{text}: cannot import {attr} from {mod_name} ({exc}): check the module path "
                              f"(it is imported from the working directory)") from None
    module = factory() if not hasattr(factory, "forward") else factory
    if not hasattr(module, "forward"):
        raise ConversionError(f"{text}: {attr}() returned {type(module).__name__}, not a torch.nn.Module: "
                              f"point at a function that builds the module")
    return module.eval()


def _example_inputs(spec, torch, example) -> tuple[list[str], list]:
    names = list(spec.input_tensors or [])
    if example is not None:
        names = names or [f"input_{k}" if k else "input" for k in range(len(example))]
        if len(names) != len(example):
            raise ConversionError(f"{spec.path}: the program takes {len(example)} inputs, input_tensors names "
                                  f"{len(names)}: name each one")
        shapes = [in_source_layout(spec, n, layout_of(len(e.shape), "NCHW"), k) or list(e.shape)
                  for k, (n, e) in enumerate(zip(names, example))]
    else:
        names = names or list(spec.input_shapes)
        if not names or any(n not in spec.input_shapes for n in names):
            raise ConversionError(f"{spec.path}: a PyTorch model needs its input shapes: set input_tensors and "
                                  f"input_shapes in mace.yml (or --input-shape NAME=1,3,224,224)")
        shapes = [in_source_layout(spec, n, layout_of(len(spec.input_shapes[n]), "NCHW"), k)
                  for k, n in enumerate(names)]
    gen = torch.Generator().manual_seed(0)
    return names, [torch.rand(*s, generator=gen) for s in shapes]


def to_onnx(spec) -> Imported:
    import onnx
    torch = require("torch", "torch", spec.path)
    module, example = load_module(spec)
    names, args = _example_inputs(spec, torch, example)
    with torch.no_grad():
        outs = _flatten(module(*args))
    out_names = list(spec.output_tensors or [f"output_{k}" if k else "output" for k in range(len(outs))])
    if len(out_names) != len(outs):
        raise ConversionError(f"{spec.path}: the model returns {len(outs)} outputs, output_tensors names "
                              f"{len(out_names)}: name each one")
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, tuple(args), buf, input_names=names, output_names=out_names,
                              opset_version=OPSET, dynamo=False, do_constant_folding=True,
                              training=torch.onnx.TrainingMode.PRESERVE)
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types, naming the op
        raise ConversionError(f"{spec.path}: torch.onnx cannot export it ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    model = onnx.load_from_string(buf.getvalue())
    return Imported(model, {n: layout_of(a.dim(), "NCHW") for n, a in zip(names, args)},
                    {n: layout_of(o.dim(), "NCHW") for n, o in zip(out_names, outs)})


def _flatten(out) -> list:
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _flatten(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _flatten(o)]
    return [out]


def reference(spec, feeds: dict, input_names: list[str], output_names: list[str]) -> dict:
    """PyTorch's own outputs on `feeds` (in the source layout), by mace's I/O names."""
    import numpy as np
    torch = require("torch", "torch", spec.path)
    module, _ = load_module(spec)
    with torch.no_grad():
        outs = _flatten(module(*[torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in input_names]))
    return {n: o.detach().numpy() for n, o in zip(output_names, outs)}
