"""Candidate local work sizes for one launch, MACE-style, filtered by what the device and the
kernel allow. The driver's own choice (None) is always first, so tuning can keep it."""
from __future__ import annotations

import itertools

MODE_LIMITS = {"fast": 3, "normal": 4, "exhaustive": 40}
#: on CPU devices (PoCL) every new local size costs a work-group function compile (0.05-0.2 s)
#: and group sizes beyond "one work-item" / "the driver's" rarely win, so fewer are tried
CPU_MODE_LIMITS = {"fast": 2, "normal": 2, "exhaustive": 12}
_PREFERRED = (64, 32, 16, 128, 8, 256, 4, 2, 1)


def _divisors(n: int, cap: int) -> list[int]:
    return [d for d in _PREFERRED if d <= cap and n % d == 0]


def local_sizes(gws: tuple[int, ...], kernel_max: int, device_max_dims: tuple[int, ...],
                mode: str = "normal", default=None, cpu_device: bool = False) -> list[tuple[int, ...] | None]:
    """The op's own default first, then the driver's choice (None), then local sizes that
    divide the global size (OpenCL 1.2 needs that), ordered by how often they win on GPUs (a
    power of two around 64 work-items first; on CPU drivers such as PoCL small groups win,
    since each work-group is one thread's task, so 1 is among them)."""
    limit = (CPU_MODE_LIMITS if cpu_device else MODE_LIMITS)[mode]
    per_dim = [_divisors(g, min(kernel_max, device_max_dims[i] if i < len(device_max_dims) else 1))
               for i, g in enumerate(gws)]
    cands = []
    for combo in itertools.product(*per_dim):
        total = 1
        for c in combo:
            total *= c
        if 1 <= total <= kernel_max:
            cands.append(combo)
    # favour totals near 64, then the first dimension largest (unit-stride work-items together)
    cands.sort(key=lambda c: (abs(_log2(_prod(c)) - 6), [-x for x in c]))
    ones = tuple(1 for _ in gws)
    head: list[tuple[int, ...] | None] = [tuple(default) if default else None, None, ones]
    out: list[tuple[int, ...] | None] = []
    for c in head + cands:
        if c not in out and (c is None or all(g % l == 0 for g, l in zip(gws, c))):
            out.append(c)
    return out[: max(limit, 2)]


def _prod(c) -> int:
    p = 1
    for x in c:
        p *= x
    return p


def _log2(n: int) -> float:
    return n.bit_length() - 1
