"""The op-family layout: an op's rules (mace/ops), CPU kernel, GPU kernel and tests share one
family name, GPU kernels take their rules from mace/ops and not from CPU kernel modules, CPU
kernel modules share helpers only through public names, and mace/ops imports no runtime."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CPU_OPS = ROOT / "mace" / "runtime" / "cpu" / "ops"
GPU_OPS = ROOT / "mace" / "runtime" / "opencl" / "ops"
GPU_ONLY = {"base", "winograd", "qweights", "qdot"}  # the GpuOp base class (and TypedOp); a conv variant's helpers; 8-bit weights
#: families with no GPU kernel: integer/bool values run on the CPU runtime only (mace/ops/dtypes.py),
#: and the rest have none yet; `gpu` refuses their nodes by name, `cpu+gpu` runs them on the CPU
CPU_ONLY = {"einsum", "loss"}


def _modules(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}


def _imports(path: Path):
    """(imported module, imported names) of every import in `path`, lazy ones included."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []


def test_every_family_has_one_name_across_runtimes_and_tests():
    cpu, gpu = _modules(CPU_OPS), _modules(GPU_OPS) - GPU_ONLY
    assert cpu - CPU_ONLY == gpu, f"only CPU: {sorted(cpu - gpu)}, only GPU: {sorted(gpu - cpu)}"
    tests = {p.stem.removeprefix("test_") for p in (ROOT / "tests" / "ops").glob("test_*.py")}
    assert cpu <= tests, f"families without tests/ops/test_<family>.py: {sorted(cpu - tests)}"
    for fam in gpu - {"alias"}:
        assert (GPU_OPS / f"{fam}.cl").exists(), f"{fam}.py has no {fam}.cl beside it"


def test_gpu_kernels_do_not_import_cpu_kernels():
    for path in sorted(GPU_OPS.glob("*.py")):
        for mod, _ in _imports(path):
            assert not mod.startswith("mace.runtime.cpu"), f"{path.name} imports {mod}"


def test_cpu_kernels_share_only_public_names():
    for path in sorted(CPU_OPS.glob("*.py")):
        for mod, names in _imports(path):
            if mod.startswith("mace."):
                private = [n for n in names if n.startswith("_")]
                assert not private, f"{path.name} imports private {private} from {mod}"
            assert not mod.startswith("mace.runtime.cpu.ops."), f"{path.name} imports kernel module {mod}"


def test_rules_import_no_runtime_converter_or_tool():
    for path in sorted((ROOT / "mace" / "ops").glob("*.py")):
        for mod, _ in _imports(path):
            if mod.startswith("mace."):
                assert mod.startswith(("mace.ops", "mace.ir", "mace.errors")), f"{path.name} imports {mod}"
