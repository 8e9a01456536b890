"""Converting every model of a deployment file (`mace convert --config mace.yml`)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mace.config import LoadedConfig, parse_shape
from mace.errors import ConfigError, ConversionError

log = logging.getLogger("mace.convert")


@dataclass
class ConvertedModel:
    name: str
    onnx_path: Path
    output: Path
    nodes: int
    sha256: str
    runtime: str
    data_type: str


def build_root(loaded: LoadedConfig, build_dir: Path | None = None) -> Path:
    return Path(build_dir or (loaded.path.parent / "build"))


def output_dir(loaded: LoadedConfig, build_dir: Path | None = None) -> Path:
    root = build_root(loaded, build_dir)
    return inside(root, root / loaded.config.library_name, loaded.path)


def inside(root: Path, path: Path, config: Path | str) -> Path:
    """`path` when it resolves (symlinks followed) to a place under `root`, else a ConfigError:
    names from the deployment file must never steer a write out of the build directory."""
    real_root, real = Path(root).resolve(), Path(path).resolve()
    if real != real_root and real_root not in real.parents:
        raise ConfigError(f"{config}: output {path} resolves to {real}, outside the build directory "
                          f"{real_root}: use plain names for library_name and models (and no symlinks "
                          f"out of the build directory)")
    return Path(path)


def quantize_options(loaded: LoadedConfig, name: str, calibration: Path | None = None):
    """The model's quantization request (QuantizeOptions), or None for a float model."""
    from mace.quantize.options import QuantizeOptions
    spec = loaded.config.models[name]
    if not spec.quantize and not spec.quantize_large_weights:
        if calibration is not None:
            log.warning("--calibration: models.%s has neither quantize: 1 nor quantize_large_weights: 1; "
                        "the calibration inputs are not used", name)
        return None
    rf = spec.quantize_range_file
    rf = (Path(rf) if Path(rf).is_absolute() else loaded.path.parent / rf) if rf else None
    if spec.quantize and calibration is None and (rf is None or not rf.exists()):
        raise ConfigError(f"{loaded.path}: models.{name}: quantize: 1 needs activation ranges: give "
                          f"--calibration DIR (inputs to calibrate on) or an existing quantize_range_file")
    return QuantizeOptions(mode="full" if spec.quantize else "weights", stat=spec.quantize_stat,
                           per_channel=spec.quantize_granularity == "per_channel",
                           calibration=Path(calibration) if calibration is not None else None, range_file=rf)


def source_io(platform: str, g) -> dict:
    """What the converter needs of a graph spec beyond shapes: the I/O names of a source model
    (TF/TFLite/PyTorch name them in mace.yml) and the layouts asked for."""
    io = {"input_formats": g.input_data_formats, "output_formats": g.output_data_formats}
    if platform != "onnx":
        io.update(input_tensors=list(g.input_tensors), output_tensors=list(g.output_tensors))
    return io


def convert_config(loaded: LoadedConfig, build_dir: Path | None = None, only: str | None = None,
                   progress=None, calibration: Path | None = None) -> list[ConvertedModel]:
    from mace.convert import convert
    results = []
    names = [only] if only else list(loaded.config.models)
    for name in names:
        if name not in loaded.config.models:
            raise ConfigError(f"{loaded.path}: no model named {name!r}: choose one of {', '.join(loaded.config.models)}")
        spec = loaded.config.models[name]
        g = spec.graph()
        src = loaded.model_path(name)
        out = inside(build_root(loaded, build_dir), output_dir(loaded, build_dir) / "model" / f"{name}.mace",
                     loaded.path)
        try:
            graph = convert(src, None, input_shapes=g.input_shape_map(),
                            data_type=spec.data_type, runtime=spec.runtime,
                            input_ranges=g.input_range_map(), obfuscate=spec.obfuscate, name=name,
                            quantize=quantize_options(loaded, name, calibration),
                            platform=spec.platform, io=source_io(spec.platform, g))
        except ConversionError as exc:
            raise ConversionError(f"{loaded.path}: models.{name}: {exc}") from None
        missing = [t for t in g.output_tensors if t not in graph.outputs]
        if missing:
            raise ConfigError(f"{loaded.path}: models.{name}.output_tensors: the model has no output "
                              f"{', '.join(missing)} (its outputs: {', '.join(graph.outputs)}): fix output_tensors")
        for t, s in zip(g.output_tensors, g.output_shapes or []):
            if list(graph.shape(t)) != parse_shape(s):
                raise ConfigError(f"{loaded.path}: models.{name}.output_shapes: {t} is {list(graph.shape(t))} "
                                  f"in the model, the deployment file says [{s}]: fix output_shapes")
        graph.outputs = list(g.output_tensors)
        graph.meta["validation_threshold"] = {"cpu": spec.threshold("cpu"), "gpu": spec.threshold("gpu")}
        from mace.convert.passes import remove_dead
        from mace.ir import modelfile
        remove_dead(graph)
        out.parent.mkdir(parents=True, exist_ok=True)
        sha = modelfile.save(graph, out)
        log.info("converted %s -> %s (%d ops)", src, out, len(graph.nodes))
        results.append(ConvertedModel(name, src, out, len(graph.nodes), sha, spec.runtime, spec.data_type))
        if progress:
            progress(name)
    return results
