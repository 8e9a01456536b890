"""`quantize: 1`: a float ONNX model -> a QDQ model (onnxruntime's static quantizer: symmetric
int8 weights per output channel or per tensor, asymmetric uint8 activations), which then takes
the bring-your-own path (`mace.quantize.lower`). Before it, onnxruntime's pre-processing folds
what can be folded (BatchNormalization into Conv, constants); activation ranges come from a
calibration run (minmax or percentile) or from a range file."""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from mace.errors import ConversionError
from mace.quantize import calibration
from mace.quantize.options import QuantizeOptions

log = logging.getLogger("mace.quantize")
PERCENTILE = 99.999


class _Reader:
    """onnxruntime's CalibrationDataReader over a list of feeds."""

    def __init__(self, samples: list[dict]):
        self.samples, self.k = samples, 0

    def get_next(self):
        if self.k >= len(self.samples):
            return None
        self.k += 1
        return self.samples[self.k - 1]

    def rewind(self):
        self.k = 0

    def __len__(self):
        return len(self.samples)


def _preprocess(src: Path, work: Path) -> Path:
    from onnxruntime.quantization.shape_inference import quant_pre_process
    out = work / "pre.onnx"
    try:
        quant_pre_process(str(src), str(out), skip_symbolic_shape=True)
        return out
    except Exception as exc:  # noqa: BLE001 - the optimizer is an optimization; the model still quantizes
        log.info("quantization pre-processing skipped (%s: %s)", type(exc).__name__, str(exc)[:120])
        return src


def _op_types() -> list[str]:
    from onnxruntime.quantization.registry import QDQRegistry
    return list(QDQRegistry.keys())


def _calibrate(model: Path, samples: list[dict], stat: str, work: Path) -> dict[str, tuple[float, float]]:
    from onnxruntime.quantization import CalibrationMethod, create_calibrator
    method = CalibrationMethod.Percentile if stat == "percentile" else CalibrationMethod.MinMax
    extra = {"percentile": PERCENTILE} if stat == "percentile" else {}
    cal = create_calibrator(model, _op_types(), augmented_model_path=str(work / "augmented.onnx"),
                            calibrate_method=method, extra_options=extra)
    cal.collect_data(_Reader(samples))
    data = cal.compute_data()
    return {k: (float(np.asarray(v.range_value[0]).reshape(-1)[0]), float(np.asarray(v.range_value[1]).reshape(-1)[0]))
            for k, v in data.data.items()}


def _quantize(model_path: Path, ranges: dict, per_channel: bool):
    from onnxruntime.quantization import CalibrationMethod, QuantType
    from onnxruntime.quantization.calibrate import TensorData, TensorsData
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer
    model = load_model_with_shape_infer(model_path)
    tr = TensorsData(CalibrationMethod.MinMax, {k: TensorData(lowest=np.float32(lo), highest=np.float32(hi))
                                                for k, (lo, hi) in ranges.items()})
    q = QDQQuantizer(model, per_channel, False, QuantType.QInt8, QuantType.QUInt8, tr, [], [], _op_types(),
                     {"WeightSymmetric": True, "ActivationSymmetric": False})
    q.quantize_model()
    q.model.topological_sort()  # the quantizer appends the Q/DQ nodes it inserts
    return float_outputs(q.model.model)


def float_outputs(model):
    """Drop the QuantizeLinear -> DequantizeLinear pair in front of each graph output: nothing reads
    a model's outputs as 8-bit, and rounding the logits to 256 levels ties and swaps close classes
    (the last layer computes in int32 and float anyway)."""
    nodes = list(model.graph.node)
    producer = {o: n for n in nodes for o in n.output}
    inits = {i.name for i in model.graph.initializer}
    for out in [o.name for o in model.graph.output]:
        dq = producer.get(out)
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if q is None or q.op_type != "QuantizeLinear" or q.input[0] in inits or q.input[0] not in producer:
            continue
        if sum(q.output[0] in n.input for n in nodes) != 1:  # the 8-bit value is read elsewhere too
            continue
        value = q.input[0]
        nodes = [n for n in nodes if n is not q and n is not dq]
        for n in nodes:
            n.input[:] = [out if i == value else i for i in n.input]
            n.output[:] = [out if o == value else o for o in n.output]
        producer = {o: n for n in nodes for o in n.output}
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {i for n in nodes for i in n.input}
    kept = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return model


def quantize_onnx(src: Path, opts: QuantizeOptions, shapes: dict[str, list[int]], input_ranges: dict):
    """The QDQ ModelProto of the float model at `src` (ranges written to opts.range_file after a
    calibration)."""
    if opts.calibration is None and opts.range_file is None:
        raise ConversionError(f"{src}: quantize: 1 needs activation ranges: give calibration inputs "
                              f"(--calibration DIR) or a quantize_range_file")
    with tempfile.TemporaryDirectory(prefix="mace-quantize-") as tmp:
        work = Path(tmp)
        model = _preprocess(Path(src), work)
        if opts.calibration is not None:
            samples = calibration.load_inputs(opts.calibration, shapes, input_ranges, opts.max_inputs)
            log.info("calibrating %s on %d inputs (%s)", src, len(samples), opts.stat)
            try:
                ranges = _calibrate(model, samples, opts.stat, work)
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for bad feeds
                raise ConversionError(f"{src}: calibration failed ({type(exc).__name__}: "
                                      f"{str(exc).splitlines()[0][:160] if str(exc) else ''}): check the "
                                      f"calibration inputs match the model's inputs") from None
            if opts.range_file is not None:
                calibration.write_ranges(opts.range_file, ranges)
        else:
            ranges = calibration.read_ranges(opts.range_file)
        return _quantize(model, ranges, opts.per_channel)
