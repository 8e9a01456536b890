"""Hostile and careless input, class by class, through every CLI verb it reaches.

Each case asserts what docs/ and mace/errors.py promise for bad input: exit code 2, one line
on stderr naming the file (or variable) and the fix, no traceback, and no file changed outside
the command's own outputs. Hypothesis fuzzes the parsers where the space is large (model file
headers, .npy headers, deployment-file names).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from mace import bundle
from mace.cli import cli, termtext
from mace.config import check_name
from mace.convert import convert
from mace.errors import MaceError, ModelFileError
from mace.feeds import read_npy
from mace.ir import modelfile

EXAMPLE = Path(__file__).resolve().parents[1] / "mace" / "examples" / "digits"
pytestmark = pytest.mark.timeout(120)   # a FIFO that is opened hangs: fail instead


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    model = root / "digits.mace"
    convert(EXAMPLE / "digits_cnn.onnx", model, input_ranges={"input": (0.0, 1.0)})
    return model


# {{{ the contract

def _snapshot(root: Path) -> dict:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink() or not p.exists():
            out[str(p)] = ("link", os.readlink(p) if p.is_symlink() else None)
        elif p.is_file():
            out[str(p)] = ("file", hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mode)
        else:
            out[str(p)] = ("other", p.stat().st_mode)
    return out


def refused(args, root: Path, *, must_say=(), outputs=(), env=None):
    """Run `mace ARGS`; assert exit 2, one `error:` line naming what must be named, no traceback,
    and nothing under `root` changed except `outputs`."""
    before = _snapshot(root)
    res = CliRunner().invoke(cli, [str(a) for a in args], env=env)
    after = _snapshot(root)
    assert res.exception is None or isinstance(res.exception, SystemExit), (
        f"{type(res.exception).__name__}: {res.exception}")
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = res.stderr.splitlines()
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, res.stderr
    assert "\x1b" not in res.stderr
    for text in must_say:
        assert str(text) in errors[0], (text, errors[0])
    allowed = {str(o) for o in outputs}
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)
               and not any(k == a or k.startswith(a + os.sep) for a in allowed)}
    assert not changed, f"files changed: {sorted(changed)}"
    return errors[0]

# }}}


# {{{ configs: mace.yml and device.yml

def _deploy_dir(tmp_path: Path, mutate=None, text: str | None = None) -> Path:
    shutil.copy(EXAMPLE / "digits_cnn.onnx", tmp_path / "digits_cnn.onnx")
    p = tmp_path / "mace.yml"
    if text is not None:
        p.write_text(text)
        return p
    raw = yaml.safe_load((EXAMPLE / "mace.yml").read_text())
    if mutate:
        mutate(raw)
    p.write_text(yaml.safe_dump(raw))
    return p


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi")) + "library_name: x\nmodels: *i\n"


def _rename_model(name):
    def mutate(raw):
        raw["models"] = {name: raw["models"]["digits_cnn"]}
    return mutate


def _set(key, value, model=False):
    def mutate(raw):
        (raw["models"]["digits_cnn"] if model else raw)[key] = value
    return mutate


CONFIG_CASES = {
    "alias bomb": (dict(text=BOMB), "alias"),
    "single alias": (dict(text="library_name: &n x\nmodels: {a: *n}\n"), "alias"),
    "deep nesting": (dict(text="[" * 100000), "nested deeper"),
    "deep mapping": (dict(text="a: " + "{b: " * 5000 + "1" + "}" * 5000), "nested deeper"),
    "nan threshold": (dict(mutate=_set("validation_threshold", {"cpu": float("nan")}, model=True)), "finite"),
    "nan range": (dict(mutate=_set("input_ranges", ["nan,1"], model=True)), "finite"),
    "inf range": (dict(mutate=_set("input_ranges", ["0,inf"], model=True)), "finite"),
    "-inf range": (dict(mutate=_set("input_ranges", ["-inf,inf"], model=True)), "finite"),
    "library traversal": (dict(mutate=_set("library_name", "../../tmp/x")), "library_name"),
    "library slash": (dict(mutate=_set("library_name", "a/b")), "library_name"),
    "library absolute": (dict(mutate=_set("library_name", "/tmp/x")), "library_name"),
    "library dotdot": (dict(mutate=_set("library_name", "..")), "library_name"),
    "library empty": (dict(mutate=_set("library_name", "")), "library_name"),
    "library newline": (dict(mutate=_set("library_name", "a\nb")), "library_name"),
    "model traversal": (dict(mutate=_rename_model("../../x")), "model name"),
    "model injection": (dict(mutate=_rename_model('x"""; __import__("os").system("touch PWNED"); """')),
                        "model name"),
    "model space": (dict(mutate=_rename_model("my model")), "model name"),
    "model unicode": (dict(mutate=_rename_model("mod\u202eel")), "model name"),
    "model escape": (dict(mutate=_rename_model("m\x1b]0;x\x07")), "model name"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_deployment_file(case, tmp_path):
    kw, says = CONFIG_CASES[case]
    cfg = _deploy_dir(tmp_path, **kw)
    refused(["convert", "--config", cfg, "--no-enable-opencl"], tmp_path, must_say=[cfg, says])
    assert not (tmp_path / "PWNED").exists()


def test_non_utf8_deployment_file(tmp_path):
    cfg = tmp_path / "mace.yml"
    cfg.write_bytes(b"library_name: caf\xe9\nmodels: {}\n")
    refused(["convert", "--config", cfg], tmp_path, must_say=[cfg, "UTF-8"])


def test_oversized_deployment_file(tmp_path):
    cfg = tmp_path / "mace.yml"
    cfg.write_text("# " + "x" * (2 << 20) + "\n")
    refused(["convert", "--config", cfg], tmp_path, must_say=[cfg, "bytes"])


def test_fifo_deployment_file(tmp_path):
    cfg = tmp_path / "mace.yml"
    os.mkfifo(cfg)
    refused(["convert", "--config", cfg], tmp_path, must_say=[cfg, "FIFO"])


def test_symlinked_library_dir_cannot_lead_out_of_the_build_dir(tmp_path):
    cfg = _deploy_dir(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "digits").symlink_to(outside)
    refused(["convert", "--config", cfg, "--no-enable-opencl"], tmp_path, must_say=["outside the build directory"])
    assert not any(outside.iterdir())


@pytest.mark.parametrize("body, says", [
    (BOMB, "alias"),
    ("devices:\n  a: &d {address: h, username: u, models: m, target_abis: [x], target_socs: [y]}\n  b: *d\n",
     "alias"),
    (b"devices:\n  caf\xe9: {}\n", "UTF-8"),
])
def test_bad_device_file(body, says, digits, tmp_path):
    conf = tmp_path / "device.yml"
    conf.write_bytes(body if isinstance(body, bytes) else body.encode())
    refused(["deploy", "--device-conf", conf, digits], tmp_path, must_say=[conf, says])


@given(st.text(min_size=0, max_size=40))
@settings(max_examples=300, deadline=None)
def test_accepted_names_stay_one_plain_path_component(name):
    try:
        check_name(name, "model name")
    except ValueError:
        return
    assert "/" not in name and "\\" not in name and ".." not in name and name not in (".", "")
    assert name.isascii() and name.isprintable() and not name.startswith(("-", "."))

# }}}


# {{{ G1: the generated bundle module holds no interpolated text

def test_bundle_module_runs_no_code_from_names(digits, tmp_path):
    hostile = 'x"""; __import__("os").system("touch {m}"); """\'\'\'; {m}'.format(m=tmp_path / "PWNED")
    data = bundle.encode(digits.read_bytes(), b"", name=hostile, library=hostile)
    path = tmp_path / "mod_mace_bundle.py"
    bundle.write_module(path, data)
    src = path.read_text()
    assert "PWNED" not in src and hostile not in src
    spec = importlib.util.spec_from_file_location("mod_mace_bundle", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert not (tmp_path / "PWNED").exists()
    assert mod.HEADER["name"] == hostile and bundle.load(mod).model == digits.read_bytes()

# }}}


# {{{ model files: crafted .mace headers

def _model_with_header(digits: Path, mutate) -> bytes:
    """digits.mace with its JSON header changed by `mutate` (weights kept, checksum recomputed:
    anyone can do that, so the header must be checked field by field)."""
    buf = digits.read_bytes()
    magic, version, hlen = struct.unpack_from("<8sIQ", buf)
    assert version == 3, "format 3: a zlib'd header"
    header = json.loads(zlib.decompress(buf[20:20 + hlen]))
    base = (20 + hlen + 63) // 64 * 64
    weights = buf[base:-32]
    new = mutate(header)
    raw = new.stored if isinstance(new, _Stored) else \
        zlib.compress(new if isinstance(new, bytes) else json.dumps(new).encode())
    head = struct.pack("<8sIQ", magic, version, len(raw)) + raw
    head += b"\0" * ((len(head) + 63) // 64 * 64 - len(head))
    body = head + weights
    return body + hashlib.sha256(body).digest()


class _Stored(bytes):
    """Header bytes written as they are, not compressed (a stream that is not zlib, or a bomb)."""

    @property
    def stored(self) -> bytes:
        return bytes(self)


def _w(field, value, index=0):
    def mutate(h):
        h["weights"][index][field] = value
        return h
    return mutate


def _h(field, value):
    def mutate(h):
        if value is KeyError:
            del h[field]
        else:
            h[field] = value
        return h
    return mutate


HEADER_CASES = {
    "not an object": lambda h: [1, 2],
    "no weights": _h("weights", KeyError),
    "no nodes": _h("nodes", KeyError),
    "nodes not a list": _h("nodes", {"a": 1}),
    "node missing op": lambda h: {**h, "nodes": [{"name": "n"}] + h["nodes"]},
    "node unknown value": lambda h: {**h, "nodes": [{**h["nodes"][0], "inputs": ["nowhere"]}] + h["nodes"][1:]},
    "shapes wrong type": _h("shapes", [1]),
    "negative dim": lambda h: {**h, "shapes": {**h["shapes"], h["inputs"][0]: [-1, 8]}},
    "input without shape": _h("inputs", ["ghost"]),
    "name not text": _h("name", 7),
    "bad dtype": lambda h: {**h, "dtypes": {**h["dtypes"], h["inputs"][0]: "object"}},
    "recursion": lambda h: b"[" * 100000 + b"]" * 100000,
    "not json": lambda h: b"\xff\xfe{",
    "not zlib": lambda h: _Stored(json.dumps(h).encode()),
    "truncated zlib": lambda h: _Stored(zlib.compress(json.dumps(h).encode())[:-9]),
    "inflates past the bound": lambda h: _Stored(zlib.compress(b" " * (257 << 20) + json.dumps(h).encode(), 1)),
    "negative offset": _w("offset", -64),
    "offset beyond file": _w("offset", 1 << 40),
    "nbytes mismatch": _w("nbytes", 4),
    "object weight": _w("dtype", "|O"),
    "structured weight": _w("dtype", [["a", "<f4"]]),
    "huge shape": _w("shape", [1 << 39, 1 << 39]),
    "float offset": _w("offset", 0.5),
    "weight not object": lambda h: {**h, "weights": ["w"]},
    "nan range": lambda h: {**h, "meta": {**h["meta"], "input_ranges": {"input": [float("nan"), 1]}}},
    "bad data type": lambda h: {**h, "meta": {**h["meta"], "data_type": "int4"}},
    "threshold text": lambda h: {**h, "meta": {**h["meta"], "validation_threshold": {"cpu": "high"}}},
}


@pytest.mark.parametrize("case", list(HEADER_CASES))
def test_crafted_model_header(case, digits, tmp_path):
    bad = tmp_path / "bad.mace"
    bad.write_bytes(_model_with_header(digits, HEADER_CASES[case]))
    with pytest.raises(ModelFileError):
        modelfile.load(bad)
    refused(["run", bad, "--runtime", "cpu"], tmp_path, must_say=[bad])


@pytest.mark.parametrize("verb", [
    ["run", "{m}", "--runtime", "cpu"],
    ["validate", "{m}", "--reference", str(EXAMPLE / "digits_cnn.onnx"), "--runtime", "cpu"],
    ["benchmark", "{m}", "--runtime", "cpu", "--runs", "1", "--init-runs", "1", "--profile-runs", "1"],
    ["tune", "{m}", "--program", "{d}/p.bin"],
    ["doctor", "{d}/p.bin", "--model", "{m}"],
])
@pytest.mark.parametrize("case", ["negative offset", "recursion", "object weight"])
def test_crafted_model_through_each_verb(verb, case, digits, tmp_path):
    bad = tmp_path / "bad.mace"
    bad.write_bytes(_model_with_header(digits, HEADER_CASES[case]))
    if verb[0] == "doctor":   # doctor needs a cache file to look at
        CliRunner().invoke(cli, ["run", str(digits), "--runtime", "gpu", "--program", str(tmp_path / "p.bin")])
    args = [a.replace("{m}", str(bad)).replace("{d}", str(tmp_path)) for a in verb]
    refused(args, tmp_path, must_say=[bad])


@pytest.mark.parametrize("what", ["fifo", "directory", "empty", "devzero", "text"])
def test_model_path_that_is_not_a_model(what, tmp_path):
    p = tmp_path / "m.mace"
    if what == "fifo":
        os.mkfifo(p)
    elif what == "directory":
        p.mkdir()
    elif what == "empty":
        p.write_bytes(b"")
    elif what == "text":
        p.write_text("library_name: x\n")
    else:
        p = Path("/dev/zero")
    args = ["run", p, "--runtime", "cpu"]
    if what == "directory":   # click refuses a directory for a file argument itself
        res = CliRunner().invoke(cli, [str(a) for a in args])
        assert res.exit_code == 2 and "Traceback" not in res.output
        return
    refused(args, tmp_path, must_say=[p])


@given(st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                    max_leaves=20),
       st.sampled_from(["name", "inputs", "outputs", "shapes", "dtypes", "nodes", "weights", "meta"]))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzzed_model_headers_raise_only_model_file_errors(digits, value, field):
    buf = _model_with_header(digits, _h(field, value))
    try:
        modelfile.decode(buf, "fuzz.mace")
    except ModelFileError:
        pass


@given(st.sampled_from(["name", "dtype", "shape", "offset", "nbytes"]),
       st.one_of(st.integers(-2**66, 2**66), st.text(max_size=6), st.lists(st.integers(-5, 2**41), max_size=4),
                 st.floats(), st.none()))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzzed_weight_entries_raise_only_model_file_errors(digits, field, value):
    buf = _model_with_header(digits, _w(field, value))
    try:
        modelfile.decode(buf, "fuzz.mace")
    except ModelFileError:
        pass

# }}}


# {{{ ONNX models

def _onnx(nodes, inits=(), inp=None, out=None) -> onnx.ModelProto:
    inp = inp or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])]
    out = out or [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])]
    g = helper.make_graph(nodes, "g", inp, out, initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def _bad_initializer():
    t = numpy_helper.from_array(np.ones(4, np.float32), "w")
    t.raw_data = b"\0" * 5
    return _onnx([helper.make_node("Add", ["x", "w"], ["y"])], [t])


def _sparse_constant():
    sp = helper.make_sparse_tensor(numpy_helper.from_array(np.ones(1, np.float32), "v"),
                                   numpy_helper.from_array(np.array([0], np.int64), "i"), [4])
    return _onnx([helper.make_node("Constant", [], ["c"], sparse_value=sp), helper.make_node("Add", ["x", "c"], ["y"])])


ONNX_CASES = {
    "malformed initializer": (_bad_initializer, "initializer"),
    "initializer dims lie": (lambda: _onnx([helper.make_node("Add", ["x", "w"], ["y"])],
                                           [TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4],
                                                        float_data=[1.0, 2.0])]), "initializer"),
    "constant without value": (lambda: _onnx([helper.make_node("Constant", [], ["c"]),
                                              helper.make_node("Add", ["x", "c"], ["y"])]), "Constant"),
    "sparse constant": (_sparse_constant, "sparse"),
    "1e12-element input": (lambda: _onnx([helper.make_node("Relu", ["x"], ["y"])],
                                         inp=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [10**6, 10**6])],
                                         out=[helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]),
                           "1000000000000 elements"),
    "two producers": (lambda: _onnx([helper.make_node("Relu", ["x"], ["y"]),
                                     helper.make_node("Sigmoid", ["x"], ["y"])]), "y is produced by"),
    "producer shadows input": (lambda: _onnx([helper.make_node("Relu", ["x"], ["x"]),
                                              helper.make_node("Relu", ["x"], ["y"])]), "x is produced by"),
    "used before produced": (lambda: _onnx([helper.make_node("Relu", ["t"], ["y"]),
                                            helper.make_node("Relu", ["x"], ["t"])]), "reads t"),
    "conv bias length": (lambda: _onnx([helper.make_node("Conv", ["x", "w", "b"], ["y"])],
                                       [numpy_helper.from_array(np.ones((2, 1, 1, 1), np.float32), "w"),
                                        numpy_helper.from_array(np.ones(3, np.float32), "b")],
                                       inp=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                                       out=[helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]), "bias"),
    "conv channels": (lambda: _onnx([helper.make_node("Conv", ["x", "w"], ["y"])],
                                    [numpy_helper.from_array(np.ones((2, 1, 1, 1), np.float32), "w")],
                                    inp=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                                    out=[helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]), "channels"),
    "gemm C": (lambda: _onnx([helper.make_node("Gemm", ["x", "w", "c"], ["y"])],
                             [numpy_helper.from_array(np.ones((4, 4), np.float32), "w"),
                              numpy_helper.from_array(np.ones((3, 1, 1), np.float32), "c")]), "broadcast"),
    "unknown element type": (lambda: _onnx([helper.make_node("Relu", ["x"], ["y"])],
                                           inp=[helper.make_tensor_value_info("x", 999, [1, 4])]), "element type"),
}


@pytest.mark.parametrize("case", list(ONNX_CASES))
def test_bad_onnx_model(case, tmp_path):
    make, says = ONNX_CASES[case]
    src = tmp_path / "m.onnx"
    src.write_bytes(make().SerializeToString())
    out = tmp_path / "out.mace"
    refused(["convert", src, "-o", out], tmp_path, must_say=[src, says])
    assert not out.exists()


_DIGITS_ONNX = onnx.load(str(EXAMPLE / "digits_cnn.onnx"))


@st.composite
def _mutated_digits(draw):
    """The digits CNN with one field rewired or rewritten: an input renamed, an attribute's ints
    replaced, an op type swapped, a node dropped, an initializer's dims changed, an input dim."""
    m = onnx.ModelProto()
    m.CopyFrom(_DIGITS_ONNX)
    g = m.graph
    kind = draw(st.sampled_from(["input", "ints", "op", "drop", "dims", "input_dim"]))
    n = g.node[draw(st.integers(0, len(g.node) - 1))]
    if kind == "input" and n.input:
        values = ["", "nope", g.input[0].name] + [o for x in g.node for o in x.output] + [i.name for i in g.initializer]
        n.input[draw(st.integers(0, len(n.input) - 1))] = draw(st.sampled_from(values))
    elif kind == "ints" and n.attribute:
        a = n.attribute[draw(st.integers(0, len(n.attribute) - 1))]
        a.ints[:] = draw(st.lists(st.integers(-3, 9), max_size=5))
    elif kind == "op":
        n.op_type = draw(st.sampled_from(["Conv", "Gemm", "Relu", "Reshape", "Concat", "MaxPool", "Foo"]))
    elif kind == "drop":
        g.node.remove(n)
    elif kind == "dims" and g.initializer:
        t = g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
        t.dims[:] = draw(st.lists(st.integers(0, 9), max_size=4))
    else:
        dims = g.input[0].type.tensor_type.shape.dim
        dims[draw(st.integers(0, len(dims) - 1))].dim_value = draw(st.sampled_from([0, 1, 3, 17, 100000]))
    return m


@given(_mutated_digits())
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_mutated_onnx_models_convert_and_run_or_fail_typed(tmp_path, model):
    import mace
    src, out = tmp_path / "m.onnx", tmp_path / "m.mace"
    src.write_bytes(model.SerializeToString())
    try:
        convert(src, out)
        engine = mace.Engine(out, runtime="cpu")
        engine.run({n: np.zeros(engine.input_shape(n), np.float32) for n in engine.input_names})
    except MaceError:
        pass


@pytest.mark.parametrize("what", ["truncated", "text", "fifo", "empty"])
def test_onnx_path_that_is_not_a_model(what, tmp_path):
    src = tmp_path / "m.onnx"
    if what == "truncated":
        src.write_bytes((EXAMPLE / "digits_cnn.onnx").read_bytes()[:200])
    elif what == "text":
        src.write_text("not a model")
    elif what == "fifo":
        os.mkfifo(src)
    else:
        src.write_bytes(b"")
    refused(["convert", src, "-o", tmp_path / "out.mace"], tmp_path, must_say=[src])

# }}}


# {{{ inputs: --input files and arrays

def _npy(tmp_path: Path, name: str, arr) -> Path:
    p = tmp_path / name
    np.save(p, arr, allow_pickle=True)
    return p


def _npy_header_claiming(tmp_path: Path, shape) -> Path:
    p = tmp_path / "huge.npy"
    with open(p, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        f.write(b"\0" * 100)
    return p


INPUT_CASES = {
    "unknown name": (lambda d: f"typo={_npy(d, 'x.npy', np.zeros((1, 1, 8, 8), np.float32))}", "typo"),
    "no equals": (lambda d: "input", "NAME=FILE.npy"),
    "transposed shape": (lambda d: f"input={_npy(d, 'x.npy', np.zeros((64, 1), np.float32))}", "shape"),
    "wrong size": (lambda d: f"input={_npy(d, 'x.npy', np.zeros((1, 1, 8, 9), np.float32))}", "shape"),
    "int64 beyond 2^24": (lambda d: f"input={_npy(d, 'x.npy', np.full((1, 1, 8, 8), 2**24 + 1, np.int64))}",
                          "2**24"),
    "float64 beyond float32": (lambda d: f"input={_npy(d, 'x.npy', np.full((1, 1, 8, 8), 1e300))}",
                               "float32's range"),
    "1e12 elements declared": (lambda d: f"input={_npy_header_claiming(d, (10**6, 10**6))}",
                               "1000000000000 elements"),
    "header bigger than data": (lambda d: f"input={_npy_header_claiming(d, (1, 1, 8, 8))}", "elements"),
    "npz archive": (lambda d: f"input={_npz(d)}", ".npz"),
    "unicode array": (lambda d: f"input={_npy(d, 'x.npy', np.array(['a', 'b']))}", "<U1"),
    "object array": (lambda d: f"input={_npy(d, 'x.npy', np.array([{'a': 1}], dtype=object))}", "object"),
    "complex array": (lambda d: f"input={_npy(d, 'x.npy', np.zeros((1, 1, 8, 8), np.complex64))}", "complex"),
    "structured array": (lambda d: f"input={_npy(d, 'x.npy', np.zeros(4, [('a', '<f4')]))}", "not numbers"),
    "fifo": (lambda d: f"input={_fifo(d)}", "FIFO"),
    "device node": (lambda d: "input=/dev/zero", "character device"),
    "directory": (lambda d: f"input={d}", "directory"),
    "missing file": (lambda d: f"input={d / 'nope.npy'}", "no such file"),
    "text file": (lambda d: f"input={_text(d)}", "not a readable .npy"),
}


def _npz(d: Path) -> Path:
    p = d / "x.npz"
    np.savez(p, input=np.zeros((1, 1, 8, 8), np.float32))
    return p


def _fifo(d: Path) -> Path:
    p = d / "x.npy"
    os.mkfifo(p)
    return p


def _text(d: Path) -> Path:
    p = d / "x.npy"
    p.write_text("1,2,3\n")
    return p


@pytest.mark.parametrize("verb", ["run", "validate"])
@pytest.mark.parametrize("case", list(INPUT_CASES))
def test_bad_input(case, verb, digits, tmp_path):
    make, says = INPUT_CASES[case]
    data = tmp_path / "data"
    data.mkdir()
    item = make(data)
    args = ["run", digits, "--runtime", "cpu", "--input", item] if verb == "run" else \
        ["validate", digits, "--reference", EXAMPLE / "digits_cnn.onnx", "--runtime", "cpu", "--input", item]
    refused(args, tmp_path, must_say=[says])


def test_leading_ones_are_the_one_reshape_rule(digits):
    import mace
    engine = mace.Engine(digits, runtime="cpu")
    x = np.random.default_rng(0).uniform(0, 1, (1, 1, 8, 8)).astype(np.float32)
    want = engine.run({"input": x})["output"]
    np.testing.assert_array_equal(engine.run({"input": x[0, 0]})["output"], want)
    np.testing.assert_array_equal(engine.run({"input": x[None]})["output"], want)
    with pytest.raises(MaceError, match="shape"):
        engine.run({"input": x.reshape(8, 8, 1)})
    with pytest.raises(MaceError, match="not an input"):
        engine.run({"input": x, "inptu": x})
    ok = engine.run({"input": np.round(x * 255).astype(np.int64)})      # exact in float32: accepted
    assert ok["output"].shape == want.shape


@given(st.dictionaries(st.sampled_from(["descr", "fortran_order", "shape", "extra"]),
                       st.one_of(st.text(max_size=6), st.booleans(), st.none(),
                                 st.lists(st.integers(-3, 2**40), max_size=3).map(tuple)), max_size=4))
@settings(max_examples=200, deadline=None)
def test_fuzzed_npy_headers_raise_only_input_errors(header):
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.npy"
        text = repr(header).encode()
        p.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text) + 1) + text + b"\n" + b"\0" * 64)
        try:
            read_npy(p)
        except MaceError:
            pass

# }}}


# {{{ validate: the reference model

def _other_onnx(tmp_path: Path) -> Path:
    m = _onnx([helper.make_node("Relu", ["x"], ["y"])])
    p = tmp_path / "other.onnx"
    p.write_bytes(m.SerializeToString())
    return p


def _same_input_other_output(tmp_path: Path) -> Path:
    m = _onnx([helper.make_node("Flatten", ["input"], ["output"])],
              inp=[helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])],
              out=[helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 64])])
    p = tmp_path / "flat.onnx"
    p.write_bytes(m.SerializeToString())
    return p


@pytest.mark.parametrize("make, says", [
    (lambda d: _write(d / "r.onnx", b"garbage"), "onnxruntime cannot load it"),
    (lambda d: _write(d / "r.onnx", (EXAMPLE / "digits_cnn.onnx").read_bytes()[:300]), "onnxruntime cannot load"),
    (_other_onnx, "inputs"),
    (_same_input_other_output, "output output has shape"),
    (lambda d: _mkfifo(d / "r.onnx"), "FIFO"),
])
def test_bad_reference_model(make, says, digits, tmp_path):
    ref = make(tmp_path)
    refused(["validate", digits, "--reference", ref, "--runtime", "cpu"], tmp_path, must_say=[ref, says])


def _write(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


def _mkfifo(p: Path) -> Path:
    os.mkfifo(p)
    return p

# }}}


# {{{ environment knobs

@pytest.mark.parametrize("knob, value", [("MACE_TUNING", "garbage"), ("MACE_COMMAND_BUFFER", "maybe"),
                                         ("MACE_LOG_LEVEL", "verbose"), ("MACE_PROGRAM_CACHE_MAX_BYTES", "lots"),
                                         ("MACE_PROGRAM_CACHE_MAX_BYTES", "0")])
@pytest.mark.parametrize("verb", [["run", "{m}", "--runtime", "cpu"], ["devices"], ["inspect", "{m}"],
                                  ["convert", str(EXAMPLE / "digits_cnn.onnx"), "-o", "{d}/o.mace"],
                                  ["cache", "verify", "{m}"]])
def test_bad_knob_values(knob, value, verb, digits, tmp_path):
    args = [a.replace("{m}", str(digits)).replace("{d}", str(tmp_path)) for a in verb]
    refused(args, tmp_path, must_say=[knob, repr(value)], env={knob: value})

# }}}


# {{{ program cache files: text from the file never drives the terminal; exit codes

def _cache_with_key(key: str, writer: str = "mace test", damage: bool = False) -> bytes:
    from mace.programcache import DeviceFingerprint
    from mace.programcache.format import CacheData, ProgramEntry, encode
    fp = DeviceFingerprint(platform_name="p[/red]", platform_vendor="v", platform_version="1",
                           device_name="d\x1b[2J", device_vendor="v", device_version="1",
                           driver_version="1", opencl_c_version="1", address_bits=64, extensions_hash="0")
    blob = b"\x7fELF" + b"\0" * 60
    digest = hashlib.sha256(blob if not damage else b"other").digest()
    data = CacheData(sections={fp.id: fp},
                     programs={(fp.id, key): ProgramEntry(fp.id, key, blob, digest, 1, 1, meta={"m": "[bold]"})})
    return encode(data, writer=writer)


HOSTILE_KEY = "[/evil]|-D X=\x1b]0;pwned\x07 [bold]|\x1b[31mred\u202e"


def test_inspect_escapes_markup_and_terminal_sequences(tmp_path):
    p = tmp_path / "c.bin"
    p.write_bytes(_cache_with_key(HOSTILE_KEY, writer="w\x1b[2J[/x]"))
    res = CliRunner().invoke(cli, ["inspect", str(p)])
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.output and "\x07" not in res.output and "\u202e" not in res.output
    assert "[/evil]" in res.output and "\\x1b" in res.output
    doc = json.loads(CliRunner().invoke(cli, ["inspect", str(p), "--json"]).stdout)
    assert doc["programs"][0]["key"] == HOSTILE_KEY        # the data itself is kept as it is


def test_inspect_exits_1_on_damaged_records(tmp_path):
    p = tmp_path / "c.bin"
    p.write_bytes(_cache_with_key("k|o|h", damage=True))
    res = CliRunner().invoke(cli, ["inspect", str(p)])
    assert res.exit_code == 1, res.output
    raw = bytearray(_cache_with_key("k|o|h"))
    raw[-10] ^= 0xFF                                        # a flipped byte inside the last record
    p.write_bytes(bytes(raw))
    assert CliRunner().invoke(cli, ["inspect", str(p)]).exit_code == 1


def test_doctor_is_not_usable_without_a_usable_program(digits, tmp_path):
    from mace.programcache.format import decode, encode
    prog = tmp_path / "p.bin"
    res = CliRunner().invoke(cli, ["run", str(digits), "--runtime", "gpu", "--program", str(prog)])
    assert res.exit_code == 0, res.output
    dec = decode(prog.read_bytes())
    for e in dec.data.programs.values():
        e.sha256 = hashlib.sha256(b"not this blob").digest()
        e.verified = False
    prog.write_bytes(encode(dec.data))
    res = CliRunner().invoke(cli, ["doctor", str(prog)])
    assert res.exit_code == 1, res.output
    assert "NOT usable" in res.output and "no usable program" in res.output


def test_error_messages_are_one_escaped_line(tmp_path):
    bad = tmp_path / "a\x1b[2Jb\nc.mace"
    bad.write_bytes(b"x" * 100)
    err = refused(["run", bad, "--runtime", "cpu"], tmp_path)
    assert "\\x1b" in err and "\\x0a" in err


def test_termtext_plain_escapes_every_control_character():
    for c in list(range(0x20)) + list(range(0x7f, 0xa0)) + [0x202e, 0x2066]:
        assert chr(c) not in termtext.plain(f"a{chr(c)}b")
    assert termtext.plain("tab\tok ü") == "tab\\x09ok ü"
    assert termtext.markup("[/evil]") == "\\[/evil]"

# }}}


# {{{ names inside a model file reach the terminal and the file system safely

EVIL = "[/evil]/../\x1b[2Jout\u202e"


@pytest.fixture
def evil_model(tmp_path):
    m = _onnx([helper.make_node("Relu", ["x"], [EVIL], name="[bold]relu\x1b]0;t\x07")],
              out=[helper.make_tensor_value_info(EVIL, TensorProto.FLOAT, [1, 4])])
    src = tmp_path / "evil.onnx"
    src.write_bytes(m.SerializeToString())
    model = tmp_path / "evil.mace"
    convert(src, model)
    return src, model


@pytest.mark.parametrize("verb", ["run", "validate", "benchmark"])
def test_names_from_a_model_are_escaped(verb, evil_model, tmp_path):
    src, model = evil_model
    out = tmp_path / "out"
    args = {"run": ["run", model, "--runtime", "cpu", "--output-dir", out],
            "validate": ["validate", model, "--reference", src, "--runtime", "cpu"],
            "benchmark": ["benchmark", model, "--runtime", "cpu", "--runs", "1", "--init-runs", "1",
                          "--profile-runs", "1"]}[verb]
    before = {p for p in tmp_path.parent.rglob("*")}
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.output and "\u202e" not in res.output
    new = {p for p in tmp_path.parent.rglob("*")} - before
    assert all(out in p.parents or p == out for p in new), new
    if verb == "run":
        [saved] = list(out.iterdir())
        assert saved.name.endswith(".npy") and saved.parent == out


def test_fifo_bundle_is_refused(tmp_path):
    import mace
    p = tmp_path / "m.mace-bundle"
    os.mkfifo(p)
    with pytest.raises(MaceError, match="FIFO"):
        mace.Engine.from_bundle(p, runtime="cpu")

# }}}
