"""The report's plots (matplotlib, Agg, written as PNG files beside report.md)."""
from __future__ import annotations

import io
from pathlib import Path

from mace.errors import MaceError
from mace.fileio import write_atomic


def _mpl():
    try:
        import matplotlib
        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure
    except ImportError:
        raise MaceError("mace report needs matplotlib for its plots: pip install 'matplotlib>=3.7'") from None
    return Figure


def _save(fig, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_atomic(path, buf.getvalue())
    return path


COLD, WARM, ACCENT, GREY = "#c0392b", "#2e86c1", "#28b463", "#7f8c8d"


def plot_init(bench: dict, path: Path) -> Path:
    Figure = _mpl()
    fig = Figure(figsize=(7.5, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    labels = ["cold\n(no program file)", "warm\n(program file present)"]
    blocks = [bench["init"]["cold"], bench["init"]["warm"]]
    init = [b["init_ms"] for b in blocks]
    first = [b["first_run_ms"] for b in blocks]
    ax.barh(labels, init, color=[COLD, WARM], label="engine init")
    ax.barh(labels, first, left=init, color=[COLD, WARM], alpha=0.45, hatch="//", label="first run")
    for i, b in enumerate(blocks):
        total = b["init_ms"] + b["first_run_ms"]
        ax.text(total, i, f"  {total:,.0f} ms ({b['compiled']} compiled, {b['from_cache']} from cache)",
                va="center", fontsize=9)
    ax.set_xlim(0, max(i + f for i, f in zip(init, first)) * 1.9)
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds (median of fresh processes)")
    sp = bench["init"].get("speedup")
    ax.set_title("Initialization to first result: cold vs warm"
                 + (f" (warm {sp:.1f}x faster)" if sp else ""), fontsize=11)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_latency(bench: dict, path: Path) -> Path:
    Figure = _mpl()
    lat = bench["latency"]
    s = lat.get("samples_ms") or []
    fig = Figure(figsize=(7.5, 3.4))
    ax = fig.add_subplot(1, 2, 1)
    ax.hist(s, bins=min(30, max(5, len(s) // 3)), color=WARM, alpha=0.85)
    for key, style in (("median_ms", "-"), ("p90_ms", "--")):
        if lat.get(key) is not None:
            ax.axvline(lat[key], color="black", linestyle=style, linewidth=1,
                       label=f"{key.split('_')[0]} {lat[key]:.3f} ms")
    ax.set_xlabel("latency per run (ms)")
    ax.set_ylabel("runs")
    ax.set_title(f"Steady latency, {lat['runs']} runs", fontsize=10)
    ax.legend(fontsize=8)
    ax2 = fig.add_subplot(1, 2, 2)
    if s:
        ax2.boxplot([s], widths=0.5, showfliers=True)
    ax2.set_xticks([1])
    ax2.set_xticklabels([bench.get("runtime", "")])
    ax2.set_ylabel("ms")
    ax2.set_title("Distribution", fontsize=10)
    ax2.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def ops_rows(bench: dict, width: int = 34) -> list[dict]:
    """The per-op plot's rows, one per profiled op in profile order: its (unique) label, share in
    percent and value text. Rows are keyed by position, never by label, so two layers whose
    shortened names look alike stay two rows with their own values."""
    ops = bench["profile"].get("ops") or []
    labels = short_labels([str(o["name"]) for o in ops], width)
    rows = []
    for o, label in zip(ops, labels):
        g = f", {o['gflops']:.2f} GFLOP/s" if o.get("gflops") else ""
        share = o["share"] * 100
        rows.append({"name": o["name"], "label": label, "share": share,
                     "text": f"  {share:.1f}% ({o['ms'] * 1e3:.1f} us{g})"})
    return rows


def ops_figure(bench: dict):
    """The per-op figure (None without profiled ops): bar i at y=i is rows[i]."""
    rows = ops_rows(bench)
    if not rows:
        return None
    Figure = _mpl()
    fig = Figure(figsize=(7.5, 0.9 + 0.38 * len(rows)))
    ax = fig.add_subplot(1, 1, 1)
    ys = list(range(len(rows)))
    shares = [r["share"] for r in rows]
    ax.barh(ys, shares, color=ACCENT)
    for y, r in zip(ys, rows):
        ax.text(r["share"], y, r["text"], va="center", fontsize=8)
    ax.set_yticks(ys)
    ax.set_yticklabels([r["label"] for r in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)                # first row on top, every row inside the axes
    ax.set_xlim(0, max(max(shares) * 1.8, 1e-9))
    ax.set_xlabel("share of GPU kernel time (%)")
    ax.set_title(f"Per-op time share (top {len(rows)}, mean of {bench['profile']['runs']} profiled runs)",
                 fontsize=10)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    return fig


def plot_ops(bench: dict, path: Path) -> Path | None:
    fig = ops_figure(bench)
    return None if fig is None else _save(fig, path)


def plot_validation(vals: dict, path: Path) -> Path | None:
    rows = [(rt, out, m, v["threshold"]) for rt, v in sorted(vals.items())
            for out, m in v["outputs"].items() if "cosine" in m]
    if not rows:
        return None
    import math
    Figure = _mpl()
    fig = Figure(figsize=(7.5, 3.2))
    labels = [f"{out}\n({rt})" for rt, out, _, _ in rows]
    ax = fig.add_subplot(1, 2, 1)
    dist = [max(1 - m["cosine"], 1e-12) for _, _, m, _ in rows]
    ax.bar(labels, dist, color=[WARM if rt != "cpu" else GREY for rt, *_ in rows])
    for i, (_, _, _, thr) in enumerate(rows):
        ax.hlines(1 - thr, i - 0.4, i + 0.4, colors=COLD, linestyles="--")
        ax.text(i, dist[i] * 1.5, ("<=1e-12" if dist[i] <= 1e-12 else f"{dist[i]:.1e}"), ha="center",
                va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(min(dist) / 10, max(max(dist), max(1 - r[3] for r in rows)) * 10)
    ax.set_ylabel("1 - cosine similarity (log)")
    ax.set_title("Distance to onnxruntime\n(dashed: pass threshold; lower is better)", fontsize=9)
    ax2 = fig.add_subplot(1, 2, 2)
    sq = [m["sqnr_db"] if math.isfinite(m["sqnr_db"]) else 200.0 for _, _, m, _ in rows]
    ax2.bar(labels, sq, color=[WARM if rt != "cpu" else GREY for rt, *_ in rows])
    for i, v in enumerate(sq):
        ax2.text(i, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    ax2.set_ylabel("SQNR (dB)")
    ax2.set_ylim(0, max(sq) * 1.2)
    ax2.set_title("Signal to quantization noise\n(higher is better)", fontsize=9)
    for a in (ax, ax2):
        a.tick_params(axis="x", labelsize=8)
        a.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _short(text: str, n: int) -> str:
    """`text` in at most n characters: its head and tail around '...' (layer names differ in both)."""
    if len(text) <= n:
        return text
    head = (n - 3) // 2
    return text[:head] + "..." + text[len(text) - (n - 3 - head):]


def short_labels(names: list[str], n: int) -> list[str]:
    """Labels of at most n characters where that keeps them apart; names that would merge are
    widened until they differ, and identical names are numbered."""
    labels = [_short(t, n) for t in names]
    width = n
    while len(set(labels)) < len(labels) and width < max(map(len, names), default=0):
        width += 4
        seen: dict = {}
        for i, label in enumerate(labels):
            seen.setdefault(label, []).append(i)
        for group in seen.values():
            if len(group) > 1:
                for i in group:
                    labels[i] = _short(names[i], width)
    counts: dict = {}
    out = []
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
        out.append(label if labels.count(label) == 1 else f"{label} #{counts[label]}")
    return out
