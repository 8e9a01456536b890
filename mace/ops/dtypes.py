"""Element types mace computes in at run time, by name (NumPy's, which are also the IR's).

float32 is every runtime's compute type (float16 is a GPU storage type for float32 values, int8
for quantized weights). The CPU runtime also computes integer and bool values, for the ops whose
kernels declare them (`mace.runtime.cpu.registry`), with ONNX's integer semantics (wrap-around,
truncating Div, Mod's sign rules). float16/float64/bfloat16/float8/string values are refused at
conversion. GPU kernels compute float32 values, and integer/bool ones for the op families whose
class declares them (`GpuOp.value_types`: cast, logic, index, integer, ...); a node with a type
no GPU class of its op declares runs on the CPU runtime under `cpu+gpu` and is refused under `gpu`.
"""
from __future__ import annotations

FLOAT = frozenset({"float32"})
INTEGER = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"})
BOOL = frozenset({"bool"})
NUMERIC = FLOAT | INTEGER
ANY = NUMERIC | BOOL
#: every type a run-time value may have (on the CPU runtime)
RUN_TYPES = ANY
#: the types GPU kernels compute in unless their class declares more
GPU_TYPES = FLOAT
