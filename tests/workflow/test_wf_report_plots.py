"""The per-op plot's data: one bar per op, at its own row, with its own value; labels kept apart."""
from __future__ import annotations

from mace.tools.report.plots import ops_figure, ops_rows, short_labels

# MobileNetV2-like names: long, sharing head and tail, differing in the middle
NAMES = [f"/features/features.{i}/conv/conv.{i % 3}/Conv" for i in (12, 0, 1, 2, 3, 13, 14, 15, 16, 17)]
US = [533.2, 120.0, 110.0, 100.0, 90.0, 80.0, 70.0, 60.0, 50.0, 40.0]


def _bench(names=NAMES):
    total = sum(US)
    ops = [{"name": n, "ms": us / 1e3, "share": us / total, "gflops": 1.5} for n, us in zip(names, US)]
    return {"profile": {"ops": ops, "runs": 5}}


def test_labels_are_short_and_never_merge():
    labels = short_labels(NAMES, 34)
    assert len(set(labels)) == len(NAMES)
    assert short_labels(["a" * 50, "a" * 50], 34)[0] != short_labels(["a" * 50, "a" * 50], 34)[1]
    assert short_labels(["conv1", "fc"], 34) == ["conv1", "fc"]
    assert all(len(x) <= 34 for x in short_labels(["x" * 60 + str(i) for i in range(3)] + ["short"], 34)[3:])


def test_rows_keep_each_ops_value():
    rows = ops_rows(_bench())
    assert [r["name"] for r in rows] == NAMES
    assert "533.2 us" in rows[0]["text"] and "120.0 us" in rows[1]["text"]


def test_figure_has_one_bar_per_op_at_its_row_with_its_value_inside_the_axes():
    bench = _bench()
    fig = ops_figure(bench)
    ax = fig.axes[0]
    bars = ax.patches
    assert len(bars) == 10
    rows = ops_rows(bench)
    ticks = dict(zip(ax.get_yticks(), [t.get_text() for t in ax.get_yticklabels()]))
    lo, hi = sorted(ax.get_ylim())
    for bar, row in zip(bars, rows):
        y = bar.get_y() + bar.get_height() / 2
        assert abs(bar.get_width() - row["share"]) < 1e-9
        assert ticks[round(y)] == row["label"]
    for text in ax.texts:                                     # every value label on its bar's row, inside
        x, y = text.get_position()
        assert lo <= y <= hi
        row = rows[round(y)]
        assert text.get_text() == row["text"] and abs(x - row["share"]) < 1e-9
    assert len(ax.texts) == 10
