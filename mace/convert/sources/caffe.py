"""Caffe (prototxt + caffemodel): refused with the way round it.

No maintained Caffe parser exists for current Python (BVLC Caffe's last release was 2017;
caffe2onnx's was 2021): converting to ONNX first, with a tool that runs where Caffe does, is
the supported path.
"""
from __future__ import annotations

from mace.errors import ConversionError

MESSAGE = ("Caffe models are not read by mace (no maintained Caffe parser exists): convert the model to "
           "ONNX where Caffe runs (e.g. caffe2onnx) and use platform: onnx")


def to_onnx(spec):
    raise ConversionError(f"{spec.path}: {MESSAGE}")


def reference(spec, feeds, input_names, output_names):
    raise ConversionError(f"{spec.path}: {MESSAGE}")
