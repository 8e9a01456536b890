"""NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (float32 scores, integer class labels),
ONNX's definition: per element -input[n, label, ...] * weight[label], 0 where the label is
`ignore_index`; reduction none / sum / mean (divided by the summed weights of the counted
elements). SoftmaxCrossEntropyLoss applies log-softmax over axis 1 first and may also give it."""
from __future__ import annotations

import numpy as np

from mace.ops.dtypes import FLOAT, INTEGER
from mace.runtime.cpu.registry import cpu_op


def _nll(logp: np.ndarray, labels: np.ndarray, weight, reduction: str, ignore_index):
    labels = np.asarray(labels, np.int64)
    keep = np.ones(labels.shape, bool) if ignore_index is None else labels != int(ignore_index)
    safe = np.where(keep, labels, 0)
    picked = np.take_along_axis(logp, safe[:, None], axis=1)[:, 0]
    w = np.ones(labels.shape, np.float32) if weight is None else np.asarray(weight, np.float32)[safe]
    w = np.where(keep, w, np.float32(0))
    loss = (-picked * w).astype(np.float32)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return np.asarray(loss.sum(dtype=np.float32), np.float32)
    return np.asarray(loss.sum(dtype=np.float32) / w.sum(dtype=np.float32), np.float32)


@cpu_op("NegativeLogLikelihoodLoss", types=FLOAT | INTEGER)
def nll_loss(node, inputs):
    a = node.attrs
    weight = inputs[2] if len(inputs) > 2 else None
    return [_nll(np.asarray(inputs[0], np.float32), inputs[1], weight, a.get("reduction", "mean"),
                 a.get("ignore_index"))]


@cpu_op("SoftmaxCrossEntropyLoss", types=FLOAT | INTEGER)
def softmax_cross_entropy(node, inputs):
    a = node.attrs
    x = np.asarray(inputs[0], np.float32)
    m = np.max(x, axis=1, keepdims=True)
    logp = (x - m - np.log(np.sum(np.exp(x - m), axis=1, keepdims=True, dtype=np.float32))).astype(np.float32)
    weight = inputs[2] if len(inputs) > 2 else None
    return [_nll(logp, inputs[1], weight, a.get("reduction", "mean"), a.get("ignore_index")), logp]
