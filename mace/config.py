"""The deployment file `mace.yml` (MACE's fields), validated with pydantic.

Every problem is one line naming the file, the field and the fix, e.g.
`mace.yml: models.mobilenet.model_sha256_checksum: checksum mismatch (file has ab12..): update it`.
"""
from __future__ import annotations

import difflib
import hashlib
import logging
import math
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mace import fileio
from mace.errors import ConfigError

#: a deployment or device file larger than this is not a hand-written config
MAX_CONFIG_BYTES = 1 << 20
#: library and model names become file and module names: a conservative character set
#: pytorch's model_file_path may name a function that builds the module: `package.module:function`
CALLABLE_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
Runtime = Literal["cpu", "gpu", "cpu+gpu"]
#: mace.yml `platform:` values (mace.convert.sources reads all but onnx)
Platform = Literal["onnx", "tensorflow", "tflite", "pytorch", "caffe"]
#: input_data_formats / output_data_formats values: a layout, or the source model's own
DATA_FORMATS = ("NHWC", "NCHW", "NONE", "AUTO")
DataType = Literal["fp32_fp32", "fp16_fp32"]
DEFAULT_THRESHOLDS = {"cpu": 0.999, "gpu": 0.995}

log = logging.getLogger("mace.config")

#: MACE keys that are read but not honoured: (is the value the default?, what happens instead).
#: Set to anything else, they get a warning naming them; they are never silently ignored.
NOT_HONOURED = {
    "input_data_types": (lambda v: all(x.lower() == "float32" for x in v), "inputs are float32"),
    "output_data_types": (lambda v: all(x.lower() == "float32" for x in v), "outputs are float32"),
    "validation_inputs_data": (lambda v: not v, "mace validate uses random inputs within input_ranges: "
                                                "pass files with `mace validate --input NAME=x.npy`"),
    "validation_outputs_data": (lambda v: not v, "mace validate compares with onnxruntime's outputs"),
    "check_tensors": (lambda v: not v, "no intermediate tensors are checked"),
    "check_shapes": (lambda v: not v, "no intermediate tensors are checked"),
    "cl_mem_type": (lambda v: v == "buffer", "OpenCL buffers are used (no image memory)"),
    "winograd": (lambda v: not v, "mace picks Winograd convolutions itself (the tuner tries them)"),
    "limit_opencl_kernel_time": (lambda v: not v, "kernels are not split"),
    "opencl_queue_window_size": (lambda v: not v, "the queue is not windowed"),
    "weight_file_path": (lambda v: not v, "weights come from the ONNX model file"),
    "backend": (lambda v: not v, "the model runs on mace's own runtimes"),
    "model_graph_format": (lambda v: v == "file", "the model is written as a .mace file (--embed for a "
                                                  "Python module)"),
    "model_data_format": (lambda v: v == "file", "the weights are written into the .mace file"),
}


def _listify(v):
    if v is None:
        return None
    if isinstance(v, (str, int, float)):
        return [str(v)]
    return [str(x) for x in v]


def parse_shape(text: str) -> list[int]:
    return [int(x) for x in str(text).replace(" ", "").split(",") if x != ""]


def parse_range(text: str) -> tuple[float, float]:
    lo, hi = (float(x) for x in str(text).split(","))
    return lo, hi


def check_name(name: str, what: str) -> str:
    """`name` when it is safe as a path component and a module name, else ValueError."""
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise ValueError(f"{what} {name!r} may use only letters, digits, '_', '-' and '.' (not '..'), "
                         f"starting with a letter or digit, at most 128 characters")
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GraphSpec(_Strict):
    """One (sub)graph's tensors; MACE accepts lists or comma-separated strings."""

    input_tensors: list[str]
    input_shapes: list[str]
    output_tensors: list[str]
    output_shapes: list[str] | None = None
    input_ranges: list[str] | None = None
    input_data_types: list[str] | None = None
    output_data_types: list[str] | None = None
    input_data_formats: list[str] | None = None
    output_data_formats: list[str] | None = None
    validation_inputs_data: list[str] | None = None
    validation_outputs_data: list[str] | None = None
    validation_threshold: dict[str, float] | None = None
    check_tensors: list[str] | None = None
    check_shapes: list[str] | None = None

    _lists = field_validator("input_tensors", "input_shapes", "output_tensors", "output_shapes", "input_ranges",
                             "input_data_types", "output_data_types", "input_data_formats",
                             "output_data_formats", "validation_inputs_data", "validation_outputs_data",
                             "check_tensors", "check_shapes", mode="before")(lambda v: _listify(v))

    @field_validator("input_shapes", "output_shapes")
    @classmethod
    def _shapes(cls, v):
        for s in v or []:
            try:
                dims = parse_shape(s)
            except ValueError:
                raise ValueError(f"shape {s!r} is not comma-separated integers like '1,3,224,224'") from None
            if not dims or any(d <= 0 for d in dims):
                raise ValueError(f"shape {s!r} must have positive dimensions")
        return v

    @field_validator("input_data_formats", "output_data_formats")
    @classmethod
    def _formats(cls, v):
        for f in v or []:
            if str(f).upper() not in DATA_FORMATS:
                raise ValueError(f"data format {f!r} is not one of NHWC, NCHW (or NONE/AUTO: the source model's)")
        return v

    @field_validator("input_ranges")
    @classmethod
    def _ranges(cls, v):
        for s in v or []:
            try:
                lo, hi = parse_range(s)
            except ValueError:
                raise ValueError(f"range {s!r} is not 'low,high' like '-1,1'") from None
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise ValueError(f"range {s!r} must be finite numbers (no nan or inf)")
            if lo > hi:
                raise ValueError(f"range {s!r} has low > high")
        return v

    @field_validator("validation_threshold", mode="before")
    @classmethod
    def _threshold_forms(cls, v):
        """MACE's `{CPU: 0.999, GPU: 0.995}`, or one number for every runtime."""
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return {"cpu": v, "gpu": v}
        if v is not None and not isinstance(v, dict):
            raise ValueError(f"{v!r} is neither a number nor a mapping like {{CPU: 0.999, GPU: 0.995}}")
        return v

    @field_validator("validation_threshold")
    @classmethod
    def _thresholds(cls, v):
        for k, x in (v or {}).items():
            if not math.isfinite(x):
                raise ValueError(f"threshold {k}: {x} is not a finite number")
            if not 0 < x <= 1:
                raise ValueError(f"threshold {k}: {x} is not a cosine similarity in (0, 1]")
        return v

    def input_shape_map(self) -> dict[str, list[int]]:
        if len(self.input_shapes) != len(self.input_tensors):
            raise ValueError(f"{len(self.input_tensors)} input_tensors but {len(self.input_shapes)} input_shapes")
        return {n: parse_shape(s) for n, s in zip(self.input_tensors, self.input_shapes)}

    def input_range_map(self) -> dict[str, tuple[float, float]]:
        ranges = self.input_ranges or ["-1,1"] * len(self.input_tensors)
        if len(ranges) == 1 and len(self.input_tensors) > 1:
            ranges = ranges * len(self.input_tensors)
        return {n: parse_range(r) for n, r in zip(self.input_tensors, ranges)}


class ModelSpec(GraphSpec):
    platform: Platform
    model_file_path: str                 # a file, a SavedModel directory, or `module:callable` (pytorch)
    model_sha256_checksum: str | None = None   # required unless model_file_path is `module:callable`
    weight_file_path: str | None = None
    weight_sha256_checksum: str | None = None
    subgraphs: list[GraphSpec] | dict[str, GraphSpec] | None = None
    runtime: Runtime = "cpu+gpu"
    data_type: DataType = "fp32_fp32"
    obfuscate: bool = False
    winograd: Literal[0, 2, 4] = 0
    cl_mem_type: Literal["buffer", "image"] = "buffer"
    limit_opencl_kernel_time: int = 0
    opencl_queue_window_size: int = 0
    quantize: Literal[0, 1] = 0
    quantize_large_weights: Literal[0, 1] = 0
    quantize_range_file: str | None = None
    quantize_stat: Literal["minmax", "percentile"] = "minmax"
    quantize_granularity: Literal["per_channel", "per_tensor"] = "per_channel"
    backend: str | None = None

    # with subgraphs, the tensor fields live there
    input_tensors: list[str] | None = None  # type: ignore[assignment]
    input_shapes: list[str] | None = None  # type: ignore[assignment]
    output_tensors: list[str] | None = None  # type: ignore[assignment]

    def graph(self) -> GraphSpec:
        if self.subgraphs:
            graphs = self.subgraphs if isinstance(self.subgraphs, list) else list(self.subgraphs.values())
            if len(graphs) != 1:
                raise ValueError("mace supports one subgraph per model")
            return graphs[0]
        return GraphSpec(**{k: getattr(self, k) for k in GraphSpec.model_fields})

    def threshold(self, runtime: str) -> float:
        table = {k.lower(): v for k, v in (self.graph().validation_threshold or {}).items()}
        key = "gpu" if "gpu" in runtime else "cpu"
        return float(table.get(key, DEFAULT_THRESHOLDS[key]))


class DeploymentConfig(_Strict):
    library_name: str
    target_abis: list[str] = Field(default_factory=lambda: ["host"])
    target_socs: list[str] | None = None
    model_graph_format: Literal["file", "code"] = "file"
    model_data_format: Literal["file", "code"] = "file"
    models: dict[str, ModelSpec]
    docker_image_tag: str | None = None
    apu_version_with_no_device: str | None = None

    _lists = field_validator("target_abis", "target_socs", mode="before")(lambda v: _listify(v))

    @field_validator("library_name")
    @classmethod
    def _library_name(cls, v):
        return check_name(v, "library_name")

    @field_validator("models", mode="before")
    @classmethod
    def _model_names(cls, v):
        if isinstance(v, dict):
            for name in v:
                check_name(name, "model name")
        return v


class LoadedConfig:
    """A validated mace.yml plus where it lives (model paths are relative to it)."""

    def __init__(self, path: Path, config: DeploymentConfig):
        self.path, self.config = path, config

    def model_path(self, name: str) -> Path:
        spec = self.config.models[name]
        p = Path(spec.model_file_path)
        if _is_callable(spec) and not (self.path.parent / p).exists():
            return p                          # `module:callable`, imported from the working directory
        return p if p.is_absolute() else (self.path.parent / p)


def _fix_for(loc: str, msg: str) -> str:
    if "unknown key" in msg or "not permitted" in msg.lower():
        return "remove it or check its spelling"
    if "required" in msg.lower():
        return "add it"
    return "correct it"


#: deployment files nest a few levels; PyYAML's composer recurses once per level
MAX_YAML_DEPTH = 32


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader without aliases (a few hundred bytes of nested `*ref`s expand to gigabytes,
    the "billion laughs", and no deployment file needs them) and with bounded nesting (a
    megabyte of `[` would exhaust Python's recursion limit)."""

    _depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor} (aliases are not allowed)",
                                              event.start_mark)
        if self._depth >= MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels",
                                              event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def read_yaml(path: Path):
    """A YAML file's content, or a one-line ConfigError naming the file and the line."""
    try:
        raw = fileio.read_bounded(path, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file: check the path") from None
    except fileio.FileRefused:
        raise
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader)
    except RecursionError:         # the scanner's own recursion, before the composer's bound
        raise ConfigError(f"{path}: nested too deeply to read: write it with at most {MAX_YAML_DEPTH} "
                          f"levels") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or exc
        fix = ("write the value out in full" if "alias" in str(problem) else
               "flatten it" if "nested" in str(problem) else "fix the syntax")
        raise ConfigError(f"{path}:{where}: not valid YAML ({problem}): {fix}") from None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _did_you_mean(loc, raw) -> str:
    """' (did you mean 'library_name'?)' for a key close to a known one of the same level."""
    known = DeploymentConfig.model_fields if len(loc) == 1 else ModelSpec.model_fields
    close = difflib.get_close_matches(str(loc[-1]), list(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _warn_not_honoured(path: Path, cfg: DeploymentConfig) -> None:
    """One warning per MACE key that is set but not honoured, saying what happens instead."""
    places = [("", cfg)] + [(f"models.{n}.", m) for n, m in cfg.models.items()]
    for name, spec in cfg.models.items():
        if spec.subgraphs:
            places.append((f"models.{name}.subgraphs.", spec.graph()))
    for prefix, obj in places:
        for key, (is_default, instead) in NOT_HONOURED.items():
            value = getattr(obj, key, None)
            if value is not None and not is_default(value):
                log.warning("%s: %s%s: %r is not honoured: %s", path, prefix, key, value, instead)


def _is_callable(spec) -> bool:
    """pytorch's `module:callable` names no file (nor checksum)."""
    return spec.platform == "pytorch" and bool(CALLABLE_RE.match(spec.model_file_path)) \
        and not Path(spec.model_file_path).exists()


def _check_model_file(loaded: LoadedConfig, name: str, spec, where: str) -> None:
    """The model file (or SavedModel directory) exists, is readable and has the checksum given."""
    mp = loaded.model_path(name)
    if spec.model_sha256_checksum is None:
        raise ConfigError(f"{where}.model_sha256_checksum: Field required: add it")
    if not mp.exists():
        raise ConfigError(f"{where}.model_file_path: {mp} does not exist: fix the path "
                          f"(relative to {loaded.path.parent})")
    if mp.is_dir():
        if spec.platform != "tensorflow":
            raise ConfigError(f"{where}.model_file_path: {mp} is a directory: give the model file "
                              f"(a directory is read only as a TensorFlow SavedModel, platform: tensorflow)")
        digest = tree_sha256(mp)
    else:
        fileio.check_readable(mp)
        digest = sha256_file(mp)
    if digest != spec.model_sha256_checksum.lower():
        raise ConfigError(f"{where}.model_sha256_checksum: checksum mismatch ({mp.name} has {digest}): "
                          f"update the checksum or restore the model file")


def tree_sha256(path: Path) -> str:
    """A directory's checksum (a SavedModel): its files' relative paths and sha256s, in order."""
    h = hashlib.sha256()
    for f in sorted(x for x in Path(path).rglob("*") if x.is_file()):
        h.update(str(f.relative_to(path)).encode() + b"\0")
        h.update(bytes.fromhex(sha256_file(f)))
    return h.hexdigest()


def load_config(path) -> LoadedConfig:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such deployment file: write one (see README, 'Deploying')")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with library_name and models")
    try:
        cfg = DeploymentConfig.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        # an unknown key first: a misspelt key is also a missing one, and the spelling is the fix
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {err['loc'][-1]!r}" + _did_you_mean(err["loc"], raw)
        raise ConfigError(f"{path}: {loc}: {msg}: {_fix_for(loc, msg)}") from None
    _warn_not_honoured(path, cfg)
    loaded = LoadedConfig(path, cfg)
    for name, spec in cfg.models.items():
        where = f"{path}: models.{name}"
        if not _is_callable(spec):
            _check_model_file(loaded, name, spec, where)
        try:
            g = spec.graph()
            g.input_shape_map()
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}: fix input_tensors/input_shapes") from None
        if g.output_shapes is not None and len(g.output_shapes) != len(g.output_tensors):
            raise ConfigError(f"{where}: {len(g.output_tensors)} output_tensors but {len(g.output_shapes)} "
                              f"output_shapes: make them match")
    return loaded
