"""Models of each framework, built once per session (framework imports and builds are slow)."""
from __future__ import annotations

import sys

import pytest
import src_builders as builders
import src_custom_ops as custom_ops


@pytest.fixture(scope="session")
def tf_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("tf_models")
    import tensorflow as tf
    mobilenet = builders.mobilenet_v2()
    tf.saved_model.save(mobilenet, str(d / "mobilenet_v2"))
    resnet = builders.resnet_like()
    names = builders.frozen_pb(resnet, d / "resnet.pb")
    builders.tflite(resnet, d / "resnet.tflite")
    builders.tflite(resnet, d / "resnet_int8.tflite", int8=True)
    builders.tflite(builders.mobile_ops(), d / "mobile_ops.tflite")
    builders.tflite(builders.argmax_pool(), d / "argmax.tflite", allow_custom_ops=True)
    builders.tflite(custom_ops.conv_transpose_net(), d / "deconv.tflite")
    custom_ops.with_conv_transpose_bias(d / "deconv.tflite", d / "deconv_bias.tflite")
    builders.tflite(custom_ops.pool_unpool_net(), d / "pool.tflite")
    custom_ops.with_argmax_unpooling(d / "pool.tflite", d / "pool_unpool.tflite")
    custom_ops.with_argmax_unpooling(d / "pool.tflite", d / "unpool.tflite", pool=False)
    return {"dir": d, "saved_model": d / "mobilenet_v2", "pb": d / "resnet.pb", "pb_names": names,
            "tflite": d / "resnet.tflite", "int8": d / "resnet_int8.tflite", "ops": d / "mobile_ops.tflite",
            "argmax": d / "argmax.tflite", "deconv": d / "deconv.tflite", "deconv_bias": d / "deconv_bias.tflite",
            "pool_unpool": d / "pool_unpool.tflite", "unpool": d / "unpool.tflite"}


@pytest.fixture(scope="session")
def torch_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("torch_models")
    (d / "tvnet.py").write_text(builders.TORCH_MODULE)
    sys.path.insert(0, str(d))
    import torch
    import tvnet
    net = tvnet.build()
    x = torch.rand(1, 3, 32, 32)
    torch.export.save(torch.export.export(net, (x,)), str(d / "net.pt2"))
    torch.jit.save(torch.jit.trace(net, (x,)), str(d / "net.ts.pt"))
    yield {"dir": d, "pt2": d / "net.pt2", "torchscript": d / "net.ts.pt", "callable": "tvnet:build"}
    sys.path.remove(str(d))


@pytest.fixture(scope="session")
def torchvision_model(tmp_path_factory):
    """torchvision's MobileNetV3-Small (random weights, 64x64) as a torch.export program."""
    import torch
    path = tmp_path_factory.mktemp("torchvision") / "mobilenet_v3_small.pt2"
    x = torch.rand(1, 3, 64, 64)
    torch.export.save(torch.export.export(builders.mobilenet_v3_small(), (x,)), str(path))
    return path
