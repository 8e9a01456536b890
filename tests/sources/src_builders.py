"""Small seeded models built with each framework inside the tests (random weights): Keras
MobileNetV2 and a ResNet-like net for TensorFlow/TFLite; torchvision's MobileNetV3-Small and a
torchvision-style net (its blocks defined here) for PyTorch."""
from __future__ import annotations

import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
SIZE = 32
_TV_LIB = None      # torchvision op schemas declared by import_torchvision()


def _randomize_bn(model, seed: int):
    """Random batch-norm statistics, so that folding them into convs is exercised."""
    import tensorflow as tf
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([rng.uniform(.5, 1.5, g.shape), rng.uniform(-.2, .2, b.shape),
                               rng.uniform(-.2, .2, m.shape), rng.uniform(.5, 1.5, v.shape)])
    return model


def mobilenet_v2(seed=0):
    import tensorflow as tf
    tf.keras.utils.set_random_seed(seed)
    return _randomize_bn(tf.keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), alpha=0.35,
                                                           weights=None, classes=10), seed)


def resnet_like(seed=0):
    """ResNet50's structure in miniature: conv stem, basic blocks with projection shortcuts."""
    import tensorflow as tf
    tf.keras.utils.set_random_seed(seed)
    L = tf.keras.layers
    x = inp = L.Input((SIZE, SIZE, 3), name="image")
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, 2, padding="same", use_bias=False)(x)))
    for filters, stride in ((16, 1), (32, 2)):
        y = L.ReLU()(L.BatchNormalization()(L.Conv2D(filters, 3, stride, padding="same", use_bias=False)(x)))
        y = L.BatchNormalization()(L.Conv2D(filters, 3, 1, padding="same", use_bias=False)(y))
        if stride != 1 or x.shape[-1] != filters:
            x = L.BatchNormalization()(L.Conv2D(filters, 1, stride, use_bias=False)(x))
        x = L.ReLU()(L.Add()([x, y]))
    x = L.Dense(10, activation="softmax", name="probs")(L.GlobalAveragePooling2D()(x))
    return _randomize_bn(tf.keras.Model(inp, x), seed)


def frozen_pb(model, path) -> tuple[str, str]:
    """A frozen GraphDef of a Keras model, input placeholder `input`; (input, output) op names."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    spec = tf.TensorSpec([1, *model.input.shape[1:]], tf.float32, name="input")
    frozen = convert_variables_to_constants_v2(tf.function(lambda x: model(x)).get_concrete_function(spec))
    path.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    return frozen.inputs[0].name.split(":")[0], frozen.outputs[0].name.split(":")[0]


def tflite(fn_or_model, path, int8=False, **options):
    import tensorflow as tf
    if hasattr(fn_or_model, "get_concrete_function"):
        conv = tf.lite.TFLiteConverter.from_concrete_functions([fn_or_model.get_concrete_function()], fn_or_model)
    else:
        conv = tf.lite.TFLiteConverter.from_keras_model(fn_or_model)
    for k, v in options.items():
        setattr(conv, k, v)
    if int8:
        rng = np.random.default_rng(0)
        shape = (1, *fn_or_model.input.shape[1:])
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([rng.uniform(-1, 1, shape).astype(np.float32)] for _ in range(8))
    path.write_bytes(conv.convert())
    return path


def mobile_ops(seed=0):
    """TFLite ops of mobile models beyond the core set: PRELU, HARD_SWISH, DEPTH_TO_SPACE,
    RESIZE_BILINEAR (half-pixel centers, TF2's default) and TRANSPOSE_CONV."""
    import tensorflow as tf
    tf.keras.utils.set_random_seed(seed)
    L = tf.keras.layers
    conv = L.Conv2D(8, 3, padding="same")
    prelu = L.PReLU(shared_axes=[1, 2], alpha_initializer=tf.keras.initializers.RandomUniform(0.1, 0.3))
    up = L.Conv2DTranspose(4, 3, strides=2, padding="same")

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 4], tf.float32, name="x")])
    def f(x):
        x = prelu(conv(x))
        x = x * tf.nn.relu6(x + 3.0) / 6.0
        x = tf.image.resize(tf.nn.depth_to_space(x, 2), (24, 24), method="bilinear")
        return up(x)
    return f


def argmax_pool():
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 4], tf.float32)])
    def f(x):
        return tf.nn.max_pool_with_argmax(x, 2, 2, "SAME")[0]
    return f


TORCH_MODULE = '''
"""A torchvision-style net (ResNet basic block, MobileNetV3 hardswish stem, depthwise conv, PixelShuffle)."""
import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.Hardswish())
        self.block = BasicBlock(16)
        self.dw = nn.Conv2d(16, 16, 3, 1, 1, groups=16)
        self.shuffle = nn.PixelShuffle(2)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        x = nn.functional.relu6(self.dw(self.block(self.stem(x))))
        return self.fc(self.shuffle(x).mean((2, 3)))


def build():
    torch.manual_seed(0)
    net = Net().eval()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net
'''


def import_torchvision():
    """torchvision 0.28 from PyPI beside torch's CPU build: its C++ ops (_C.so) link torch's CUDA
    libraries and do not load, and its import then fails registering a fake kernel for the missing
    torchvision::nms (pytorch/pytorch#122494). Its models are pure Python and use none of those ops:
    declaring the two schemas it registers unconditionally lets it import (its +cpu build, from
    download.pytorch.org, needs none of this)."""
    import torch
    try:
        import torchvision
        return torchvision
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
    for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
        del sys.modules[name]
    global _TV_LIB
    _TV_LIB = torch.library.Library("torchvision", "DEF")        # kept alive: the schemas live with it
    _TV_LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TV_LIB.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision
    return torchvision


def mobilenet_v3_small(seed=0):
    """torchvision's MobileNetV3-Small (hardswish, squeeze-excitation, hardsigmoid), random weights
    and random batch-norm statistics."""
    import torch
    tv = import_torchvision()
    torch.manual_seed(seed)
    net = tv.models.mobilenet_v3_small(weights=None, num_classes=10).eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net
