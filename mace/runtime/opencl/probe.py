"""The device probe's child process: tiny kernels that must build and compute the right answer
(float vector widths and half storage; `dot-khr` / `dot-arm`: 8-bit integer dot products).

Run as a script (`python probe.py PLATFORM DEVICE`), not imported by the engine: a driver's
compiler may abort the process that builds a kernel it cannot handle (PyPI's PoCL on AMD Zen 4
dies with "LLVM ERROR: Cannot select ... fmax" on 16-wide float vectors), so the engine asks a
child and reads what it printed before it died. Imports only numpy and pyopencl (starts fast).

Prints one JSON line per probe, flushed as soon as it is known:
    {"widths": [16], "ok": false, "why": "kernel creation failed: INVALID_KERNEL_NAME ..."}
and leaves with os._exit (a driver that aborts at teardown cannot spoil a finished probe).
"""
from __future__ import annotations

import json
import os
import re
import sys

#: the vector widths the kernels use, widest first (conv/depthwise/linear VW, pool/batchnorm WV)
WIDTHS = (16, 8, 4)

SOURCE = r"""
/* one probe per vector width W: a vector passed by value to a function the compiler keeps (the
 * call ABI that broke on Zen 4), vload/vstore, an unaligned vector deref (as pool.cl does),
 * fmax/fmin/select, and half storage (vload_half/vstore_half). -DONLY=W keeps one width. */
#define PROBE(W)                                                                                \
typedef float##W vfu##W __attribute__((aligned(4)));                                             \
__attribute__((noinline)) float##W probe_mix##W(float##W a, float##W b) {                       \
    return fmax(a, b) * 0.5f + fmin(a, b);                                                       \
}                                                                                                \
__kernel void probe_float##W(__global const float* x, __global const float* y,                   \
                             __global float* out) {                                              \
    const int i = get_global_id(0) * W;                                                          \
    float##W a = vload##W(0, x + i);                                                             \
    float##W b = *(const __global vfu##W*)(y + i);                                               \
    float##W r = probe_mix##W(a, b) + select((float##W)0.0f, (float##W)1.0f, isgreater(a, b));   \
    vstore##W(r * 2.0f + a, 0, out + i);                                                         \
}                                                                                                \
__kernel void probe_half##W(__global const half* x, __global half* out) {                        \
    const int i = get_global_id(0) * W;                                                          \
    float##W a = vload_half##W(0, x + i);                                                        \
    vstore_half##W(fmax(a, (float##W)0.0f) + 1.0f, 0, out + i);                                  \
}

#if !defined(ONLY) || ONLY == 16
PROBE(16)
#endif
#if !defined(ONLY) || ONLY == 8
PROBE(8)
#endif
#if !defined(ONLY) || ONLY == 4
PROBE(4)
#endif
"""

GROUPS = 64

#: 8-bit integer dot products (cl_khr_integer_dot_product or cl_arm_integer_dot_product_int8,
#: -DDOT_KHR / -DDOT_ARM): signed char4 x char4 with int32 accumulation, as qdot.cl uses them
DOT_SOURCE = r"""
#ifdef DOT_KHR
#pragma OPENCL EXTENSION cl_khr_integer_dot_product : enable
#define DOT4(a, b) dot((a), (b))
#else
#pragma OPENCL EXTENSION cl_arm_integer_dot_product_int8 : enable
#define DOT4(a, b) arm_dot((a), (b))
#endif
__kernel void probe_dot(__global const char4* a, __global const char4* b, __global int* out) {
    const int i = get_global_id(0);
    out[i] = DOT4(a[i], b[i]) + DOT4(a[i], b[GROUPS - 1 - i]);
}
""".replace("GROUPS", str(GROUPS))


def check_dot(cl, np, ctx, queue, device, flavour: str) -> tuple[str, str]:
    """(the build options under which the dot-product kernel of `flavour` ("khr" or "arm") builds
    and computes exactly, or "" and why not): OpenCL C 3.0 compilers declare the khr builtins
    only with -cl-std=CL3.0."""
    why = ""
    for options in ([f"-DDOT_{flavour.upper()}"], [f"-DDOT_{flavour.upper()}", "-cl-std=CL3.0"]):
        try:
            why = _run_dot(cl, np, ctx, queue, device, options)
        except Exception as exc:  # noqa: BLE001 -- any driver error means "not with these options"
            why = "failed: " + _one_line(exc)
        if not why:
            return " ".join(options), ""
    return "", why


def _run_dot(cl, np, ctx, queue, device, options: list[str]) -> str:
    prog = cl.Program(ctx, DOT_SOURCE).build(options=options, devices=[device], cache_dir=False)
    rng = np.random.default_rng(4)
    a = rng.integers(-128, 128, (GROUPS, 4), dtype=np.int8)
    b = rng.integers(-128, 128, (GROUPS, 4), dtype=np.int8)
    mf = cl.mem_flags
    ba, bb = (cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=v) for v in (a, b))
    bo = cl.Buffer(ctx, mf.WRITE_ONLY, size=GROUPS * 4)
    cl.Kernel(prog, "probe_dot")(queue, (GROUPS,), None, ba, bb, bo)
    out = np.empty(GROUPS, np.int32)
    cl.enqueue_copy(queue, out, bo)
    queue.finish()
    a32, b32 = a.astype(np.int32), b.astype(np.int32)
    want = (a32 * b32).sum(1) + (a32 * b32[::-1]).sum(1)
    return "" if np.array_equal(out, want) else "wrong result: integer dot product"


def injected(widths: tuple[int, ...]) -> str | None:
    """MACE_TEST_BREAK_BUILD (tests only): a regex over "probe -DPW=<w>" for each width built;
    "abort:" first kills this process at the build, as a crashing compiler does."""
    spec = os.environ.get("MACE_TEST_BREAK_BUILD", "")
    abort = spec.startswith("abort:")
    pattern = spec[6:] if abort else spec
    if pattern and any(re.search(pattern, f"probe -DPW={w}") for w in widths):
        if abort:
            os.abort()
        return "build failed: injected failure (MACE_TEST_BREAK_BUILD)"
    return None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]


def check(cl, np, ctx, queue, device, widths: tuple[int, ...]) -> str | None:
    """None when the probe kernels of `widths` build, run and compute the right answer."""
    why = injected(widths)
    if why:
        return why
    options = [f"-DONLY={widths[0]}"] if len(widths) == 1 else []
    try:
        prog = cl.Program(ctx, SOURCE).build(options=options, devices=[device], cache_dir=False)
    except Exception as exc:  # noqa: BLE001 -- any driver error means "not these widths"
        return "build failed: " + _one_line(exc)
    for w in widths:
        why = _run_width(cl, np, ctx, queue, prog, w)
        if why:
            return why
    return None


def _run_width(cl, np, ctx, queue, prog, width: int) -> str | None:
    try:
        k_float, k_half = cl.Kernel(prog, f"probe_float{width}"), cl.Kernel(prog, f"probe_half{width}")
    except Exception as exc:  # noqa: BLE001
        return "kernel creation failed: " + _one_line(exc)
    rng = np.random.default_rng(width)
    n = width * GROUPS
    x = rng.uniform(-2, 2, n).astype(np.float32)
    y = rng.uniform(-2, 2, n).astype(np.float32)
    xh = rng.uniform(-2, 2, n).astype(np.float16)
    mf = cl.mem_flags
    bufs = [cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=a) for a in (x, y, xh)]
    bo, boh = cl.Buffer(ctx, mf.WRITE_ONLY, size=n * 4), cl.Buffer(ctx, mf.WRITE_ONLY, size=n * 2)
    out, outh = np.empty(n, np.float32), np.empty(n, np.float16)
    try:
        k_float(queue, (GROUPS,), None, bufs[0], bufs[1], bo)
        k_half(queue, (GROUPS,), None, bufs[2], boh)
        cl.enqueue_copy(queue, out, bo)
        cl.enqueue_copy(queue, outh, boh)
        queue.finish()
    except Exception as exc:  # noqa: BLE001
        return "launch failed: " + _one_line(exc)
    want = (np.maximum(x, y) * 0.5 + np.minimum(x, y) + (x > y)) * 2 + x
    if not np.allclose(out, want, rtol=1e-5, atol=1e-5):
        return f"wrong result: float{width} kernel off by {float(np.max(np.abs(out - want))):.3g}"
    if not np.array_equal(outh, (np.maximum(xh.astype(np.float32), 0) + 1).astype(np.float16)):
        return f"wrong result: vload_half{width}/vstore_half{width}"
    return None


def main(argv: list[str]) -> None:
    """argv: PLATFORM DEVICE MODE; MODE "all" builds every width in one program (one build on a
    healthy device), else it is a comma-separated list of widths probed one program each."""
    import numpy as np
    import pyopencl as cl
    platform, index, mode = int(argv[1]), int(argv[2]), argv[3]
    device = cl.get_platforms()[platform].get_devices()[index]
    ctx = cl.Context([device])
    queue = cl.CommandQueue(ctx, device)
    if mode.startswith("dot-"):  # dot-khr / dot-arm
        print(json.dumps({"dot": mode[4:], "started": True}), flush=True)
        options, why = check_dot(cl, np, ctx, queue, device, mode[4:])
        print(json.dumps({"dot": mode[4:], "ok": bool(options), "options": options, "why": why}), flush=True)
        os._exit(0)
    groups = [WIDTHS] if mode == "all" else [(int(w),) for w in mode.split(",")]
    for widths in groups:
        print(json.dumps({"widths": list(widths), "started": True}), flush=True)
        why = check(cl, np, ctx, queue, device, widths)
        print(json.dumps({"widths": list(widths), "ok": why is None, "why": why or ""}), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
