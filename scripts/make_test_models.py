#!/usr/bin/env python3
"""Generate the ONNX test models (needs torch; NOT a runtime dependency of mace).

Run with the generation venv (see tests/models/README.md):

    /tmp/torchvenv/bin/python scripts/make_test_models.py            # everything
    /tmp/torchvenv/bin/python scripts/make_test_models.py resnet18   # some of them
    /tmp/torchvenv/bin/python scripts/make_test_models.py digits

Big models (random weights, fixed seeds) -> tests/models/<name>.onnx (compact:
initializers > 4096 elements stripped) + tests/models/<name>.json (recipe);
``mace.testing.models.materialize(name)`` rebuilds the full model.
The digits CNN is trained on scikit-learn's bundled digits data set and shipped
whole under mace/examples/digits/.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import math
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from mace.testing import models as tm  # noqa: E402  (numpy + onnx only)

OPSET = 17
MODELS_OUT = REPO / "tests" / "models"
DIGITS_OUT = REPO / "mace" / "examples" / "digits"
BIG_MODELS = ["mobilenet_v1", "mobilenet_v2", "resnet18", "squeezenet1_1", "efficientnet_lite0"]
SEEDS = {"mobilenet_v1": 11, "mobilenet_v2": 12, "resnet18": 13, "squeezenet1_1": 14, "efficientnet_lite0": 15}


# --------------------------------------------------------------------------- architectures


def conv_bn_act(cin, cout, k, s=1, groups=1, act=nn.ReLU, eps=1e-5):
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=eps),
        act(inplace=True),
    )


class MobileNetV1(nn.Module):
    """MobileNet v1 1.0/224 (Howard et al. 2017), ReLU, 7x7 AveragePool head."""

    CFG = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]

    def __init__(self, num_classes=1000):
        super().__init__()
        layers = [conv_bn_act(3, 32, 3, 2)]
        cin = 32
        for cout, s in self.CFG:
            layers += [conv_bn_act(cin, cin, 3, s, groups=cin), conv_bn_act(cin, cout, 1)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d(7)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = self.pool(self.features(x))
        return self.fc(torch.flatten(x, 1))


def _make_divisible(v, divisor=8, min_value=None):
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(conv_bn_act(inp, hidden, 1, act=nn.ReLU6))
        layers += [
            conv_bn_act(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision.models.mobilenet_v2 (width 1.0) equivalent."""

    def __init__(self, num_classes=1000):
        super().__init__()
        settings = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]
        cin = _make_divisible(32)
        self.last_channel = _make_divisible(1280)
        feats = [conv_bn_act(3, cin, 3, 2, act=nn.ReLU6)]
        for t, c, n, s in settings:
            cout = _make_divisible(c)
            for i in range(n):
                feats.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        feats.append(conv_bn_act(cin, self.last_channel, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last_channel, num_classes))

    def forward(self, x):
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """torchvision.models.resnet18 equivalent."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        blocks, inplanes = [], 64
        for planes, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            blocks.append(nn.Sequential(BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes)))
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = blocks
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Fire(nn.Module):
    def __init__(self, inplanes, squeeze, e1, e3):
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze, 1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, e1, 1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, e3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))], 1)


class SqueezeNet11(nn.Module):
    """torchvision.models.squeezenet1_1 equivalent (no BatchNorm in this architecture)."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, 2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(64, 16, 64, 64),
            Fire(128, 16, 64, 64),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(128, 32, 128, 128),
            Fire(256, 32, 128, 128),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(256, 48, 192, 192),
            Fire(384, 48, 192, 192),
            Fire(384, 64, 256, 256),
            Fire(512, 64, 256, 256),
        )
        self.final_conv = nn.Conv2d(512, num_classes, 1)
        self.classifier = nn.Sequential(nn.Dropout(0.5), self.final_conv, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1)))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


# ---- EfficientNet-Lite0 (TF port, timm's tf_efficientnet_lite0 layout)


def get_same_padding(x, k: int, s: int, d: int):
    """timm.layers.padding.get_same_padding: traced sizes are tensors -> runtime shape chain."""
    if isinstance(x, torch.Tensor):
        return torch.clamp(((x / s).ceil() - 1) * s + (k - 1) * d + 1 - x, min=0)
    return max((math.ceil(x / s) - 1) * s + (k - 1) * d + 1 - x, 0)


def pad_same(x, kernel_size, stride, dilation=(1, 1), value: float = 0.0):
    """timm.layers.padding.pad_same: TF "SAME" padding computed from x.size() in forward."""
    ih, iw = x.size()[-2:]
    pad_h = get_same_padding(ih, kernel_size[0], stride[0], dilation[0])
    pad_w = get_same_padding(iw, kernel_size[1], stride[1], dilation[1])
    return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=value)


class Conv2dSame(nn.Conv2d):
    """timm.layers.conv2d_same.Conv2dSame."""

    def __init__(self, cin, cout, k, stride=1, groups=1, bias=False):
        super().__init__(cin, cout, k, stride, 0, 1, groups, bias)

    def forward(self, x):
        x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        return F.conv2d(x, self.weight, self.bias, self.stride, (0, 0), self.dilation, self.groups)


def tf_conv(cin, cout, k, stride=1, groups=1):
    # timm create_conv2d(padding='same'): static symmetric padding when possible (stride 1, odd k),
    # dynamic Conv2dSame otherwise (all stride-2 convs here).
    if stride == 1 and (k - 1) % 2 == 0:
        return nn.Conv2d(cin, cout, k, 1, (k - 1) // 2, groups=groups, bias=False)
    return Conv2dSame(cin, cout, k, stride, groups)


TF_BN_EPS = 1e-3


class DepthwiseSeparable(nn.Module):
    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.conv_dw = tf_conv(cin, cin, k, stride, groups=cin)
        self.bn1 = nn.BatchNorm2d(cin, eps=TF_BN_EPS)
        self.act1 = nn.ReLU6(inplace=True)
        self.conv_pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=TF_BN_EPS)
        self.has_skip = stride == 1 and cin == cout

    def forward(self, x):
        y = self.bn2(self.conv_pw(self.act1(self.bn1(self.conv_dw(x)))))
        return x + y if self.has_skip else y


class InvertedResidualTF(nn.Module):
    def __init__(self, cin, cout, k, stride, expand):
        super().__init__()
        mid = cin * expand
        self.conv_pw = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid, eps=TF_BN_EPS)
        self.act1 = nn.ReLU6(inplace=True)
        self.conv_dw = tf_conv(mid, mid, k, stride, groups=mid)
        self.bn2 = nn.BatchNorm2d(mid, eps=TF_BN_EPS)
        self.act2 = nn.ReLU6(inplace=True)
        self.conv_pwl = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout, eps=TF_BN_EPS)
        self.has_skip = stride == 1 and cin == cout

    def forward(self, x):
        y = self.act1(self.bn1(self.conv_pw(x)))
        y = self.act2(self.bn2(self.conv_dw(y)))
        y = self.bn3(self.conv_pwl(y))
        return x + y if self.has_skip else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: ReLU6, no squeeze-excite, fixed stem/head, TF "SAME" padding."""

    # block type, repeats, kernel, stride, expand, out channels (timm _gen_efficientnet_lite arch_def)
    ARCH = [("ds", 1, 3, 1, 1, 16), ("ir", 2, 3, 2, 6, 24), ("ir", 2, 5, 2, 6, 40), ("ir", 3, 3, 2, 6, 80),
            ("ir", 3, 5, 1, 6, 112), ("ir", 4, 5, 2, 6, 192), ("ir", 1, 3, 1, 6, 320)]

    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv_stem = tf_conv(3, 32, 3, 2)
        self.bn1 = nn.BatchNorm2d(32, eps=TF_BN_EPS)
        self.act1 = nn.ReLU6(inplace=True)
        blocks, cin = [], 32
        for kind, n, k, s, e, cout in self.ARCH:
            stage = []
            for i in range(n):
                stride = s if i == 0 else 1
                stage.append(DepthwiseSeparable(cin, cout, k, stride) if kind == "ds" else InvertedResidualTF(cin, cout, k, stride, e))
                cin = cout
            blocks.append(nn.Sequential(*stage))
        self.blocks = nn.Sequential(*blocks)
        self.conv_head = nn.Conv2d(cin, 1280, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(1280, eps=TF_BN_EPS)
        self.act2 = nn.ReLU6(inplace=True)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x):
        x = self.act1(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        x = self.act2(self.bn2(self.conv_head(x)))
        x = torch.flatten(self.global_pool(x), 1)
        return self.classifier(self.dropout(x))


ARCHS = {
    "mobilenet_v1": MobileNetV1,
    "mobilenet_v2": MobileNetV2,
    "resnet18": ResNet18,
    "squeezenet1_1": SqueezeNet11,
    "efficientnet_lite0": EfficientNetLite0,
}


# --------------------------------------------------------------------------- weights


def init_weights(name: str, model: nn.Module) -> list[dict]:
    """Random weights.  Tensors > COMPACT_THRESHOLD elements come from a numpy recipe (so the
    compact model can be re-inflated without torch); the rest from torch's seeded RNG."""
    seed = SEEDS[name]
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    recipes = []
    idx = 0
    for mod_name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            w = mod.weight
            fan_in = w[0].numel()
            # He-normal keeps activations O(1) through ReLU stacks; the classifier gets gain 1 here
            # and is centred/rescaled later (scale_classifier).
            classifier = isinstance(mod, nn.Linear) or mod.out_channels == 1000
            std = (1.0 if classifier else math.sqrt(2.0)) / math.sqrt(fan_in)
            if w.numel() > tm.COMPACT_THRESHOLD:
                entry = {
                    "name": f"{mod_name}.weight",
                    "shape": list(w.shape),
                    "dtype": "float32",
                    "seed": seed * 1000 + idx,
                    "mean": 0.0,
                    "std": float(np.float32(std)),
                    "nonneg": False,
                }
                arr = tm.generate_tensor(entry)
                entry["sha256"] = hashlib.sha256(arr.tobytes()).hexdigest()
                recipes.append(entry)
                idx += 1
                with torch.no_grad():
                    w.copy_(torch.from_numpy(arr))
            else:
                with torch.no_grad():
                    w.normal_(0.0, std, generator=g)
            if mod.bias is not None:
                with torch.no_grad():
                    mod.bias.uniform_(-0.1, 0.1, generator=g)
        elif isinstance(mod, nn.BatchNorm2d):
            with torch.no_grad():
                mod.weight.uniform_(0.5, 1.5, generator=g)
                mod.bias.normal_(0.0, 0.25, generator=g)
    return recipes


def calibration_batch(seed: int, n: int = 8, shape=(3, 224, 224)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    half = n // 2
    return torch.cat([torch.randn((half, *shape), generator=g), torch.rand((n - half, *shape), generator=g)])


@torch.no_grad()
def calibrate_bn(name: str, model: nn.Module) -> None:
    """Running stats = statistics of real activations (random images), then perturbed, so every
    BatchNormalization is non-trivial but the network stays numerically sane."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    model(calibration_batch(SEEDS[name] + 500))
    g = torch.Generator().manual_seed(SEEDS[name] + 700)
    for m in bns:
        std = m.running_var.sqrt()
        m.running_mean.add_(0.1 * std * torch.randn(m.running_mean.shape, generator=g))
        m.running_var.mul_(torch.exp(0.2 * torch.randn(m.running_var.shape, generator=g)))
        m.momentum = 0.1
    model.eval()


def _classifier(model: nn.Module) -> nn.Module:
    return [m for m in model.modules() if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.out_channels == 1000)][-1]


@torch.no_grad()
def center_classifier(name: str, model: nn.Module) -> float:
    """Random deep nets map all (noise) images to nearly the same pooled features, so the logits
    share one dominant direction and argmax hardly changes between inputs.  Setting the
    classifier bias to minus the mean response over random images makes the logits depend on the
    input (different inputs -> different argmax) while keeping them O(1).  The mean is taken over
    uniform [0, 1) images (the canonical test input, recorded in the recipe); the pooled features
    of white noise hardly vary within one input distribution, so inputs drawn from another
    distribution (e.g. standard normal) get an offset that favours a few classes."""
    clf = _classifier(model)
    seen = []
    hook = clf.register_forward_hook(lambda mod, inp, out: seen.append(out - (0 if mod.bias is None else
                                                                               mod.bias.view(1, -1, *[1] * (out.dim() - 2)))))
    model.eval()
    model(torch.rand((16, 3, 224, 224), generator=torch.Generator().manual_seed(SEEDS[name] + 800)))
    hook.remove()
    out = seen[0]
    dims = [d for d in range(out.dim()) if d != 1]
    mean = out.mean(dim=dims)
    g = torch.Generator().manual_seed(SEEDS[name] + 850)
    bias = -mean + 0.01 * out.std() * torch.randn(mean.shape, generator=g)
    if isinstance(clf, nn.Conv2d):
        # SqueezeNet: the classifier conv is followed by ReLU and then averaged over space.  Centred
        # per position, the ReLU would turn each logit into ~0.4*(its spatial std), the same for
        # every input; a common positive offset keeps the ReLU (mostly) linear instead.
        bias += 3.0 * out.std(dim=dims).max()
    clf.bias.copy_(bias)
    pooled = out.mean(dim=list(range(2, out.dim()))) if out.dim() > 2 else out
    return float((pooled - pooled.mean(dim=0)).std())


LOGIT_SPREAD = 1.0  # target std of the (centred) logits between uniform [0, 1) inputs


@torch.no_grad()
def scale_classifier(name: str, model: nn.Module, recipes: list[dict]) -> None:
    """Centre the classifier, then rescale its (recipe) weights so the input-dependent part of the
    logits is O(1): normal(0, a*std) with the same seed is exactly a*normal(0, std)."""
    spread = center_classifier(name, model)
    clf = _classifier(model)
    entry = next(e for e in recipes if e["sha256"] == hashlib.sha256(clf.weight.numpy().tobytes()).hexdigest())
    entry["std"] = float(np.float32(entry["std"] * LOGIT_SPREAD / spread))
    arr = tm.generate_tensor(entry)
    entry["sha256"] = hashlib.sha256(arr.tobytes()).hexdigest()
    clf.weight.copy_(torch.from_numpy(arr))
    center_classifier(name, model)


# --------------------------------------------------------------------------- export helpers


def export_onnx(model, x, path: Path, output_shape, dynamic_hw: bool = False) -> onnx.ModelProto:
    """TorchScript exporter; TrainingMode.PRESERVE (model in eval) keeps BatchNormalization
    (EVAL would fuse it into Conv), do_constant_folding=False keeps the graph as traced."""
    kwargs = {}
    if dynamic_hw:
        # With fully static input shapes the exporter's shape inference turns x.size() into
        # constants; making H/W symbolic keeps the runtime Shape->...->Pad chain (what older
        # exporters emitted for timm's TF-"same" models).  The dims are pinned again below.
        kwargs["dynamic_axes"] = {"input": {2: "height", 3: "width"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x,), str(path), dynamo=False, opset_version=OPSET,
            input_names=["input"], output_names=["output"],
            training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False, **kwargs,
        )
    m = onnx.load(str(path))
    _pin_dims(m.graph.input[0], list(x.shape))
    _pin_dims(m.graph.output[0], list(output_shape))
    del m.graph.value_info[:]
    m.producer_name = "mace/scripts/make_test_models.py"
    onnx.checker.check_model(m)
    onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    onnx.save(m, str(path))
    return m


def _pin_dims(vi: onnx.ValueInfoProto, shape) -> None:
    dims = vi.type.tensor_type.shape.dim
    del dims[:]
    for d in shape:
        dims.add().dim_value = int(d)


def op_counts(m: onnx.ModelProto) -> collections.Counter:
    return collections.Counter(n.op_type for n in m.graph.node)


def run_ort(path_or_bytes, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(path_or_bytes, so, providers=["CPUExecutionProvider"])
    return sess.run(["output"], {"input": x})[0]


def compact(full: onnx.ModelProto, recipes: list[dict]) -> tuple[onnx.ModelProto, list[dict]]:
    """Strip every initializer > COMPACT_THRESHOLD elements; each must be covered by a recipe."""
    by_hash = {e["sha256"]: e for e in recipes}
    m = onnx.ModelProto()
    m.CopyFrom(full)
    used = []
    for init in m.graph.initializer:
        n = int(np.prod(init.dims)) if len(init.dims) else 1
        if n <= tm.COMPACT_THRESHOLD:
            continue
        arr = onnx.numpy_helper.to_array(init)
        entry = by_hash.get(hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest())
        if entry is None:
            raise RuntimeError(f"large initializer {init.name} {list(init.dims)} has no recipe")
        entry = dict(entry, name=init.name)  # ONNX name (exporter may rename)
        used.append(entry)
        dims, dtype = list(init.dims), init.data_type
        init.Clear()
        init.name, init.data_type = entry["name"], dtype
        init.dims.extend(dims)
    return m, used


# --------------------------------------------------------------------------- big models


def make_big(name: str, full_dir: Path) -> dict:
    torch.set_num_threads(2)
    model = ARCHS[name]()
    recipes = init_weights(name, model)
    calibrate_bn(name, model)
    scale_classifier(name, model, recipes)
    model.eval()
    x = calibration_batch(SEEDS[name] + 900, n=1)
    with torch.no_grad():
        ref = model(x).numpy()
    full_path = full_dir / f"{name}.onnx"
    full = export_onnx(model, x, full_path, ref.shape, dynamic_hw=(name == "efficientnet_lite0"))
    got = run_ort(str(full_path), x.numpy())
    err = float(np.abs(got - ref).max())
    assert err < 1e-3 * max(1.0, float(np.abs(ref).max())), f"{name}: torch vs onnxruntime max err {err}"

    small, used = compact(full, recipes)
    recipe = {
        "format": 1,
        "name": name,
        "generator": "scripts/make_test_models.py",
        "input": {"name": "input", "shape": [1, 3, 224, 224], "dtype": "float32", "range": [0.0, 1.0]},
        "output": {"name": "output", "shape": list(ref.shape), "dtype": "float32"},
        "compact_threshold": tm.COMPACT_THRESHOLD,
        "initializers": used,
    }
    rebuilt = tm.build_model(onnx.load_from_string(tm.serialize(small)), recipe)
    if rebuilt != full:
        raise RuntimeError(f"{name}: materialized model differs from the exported one")
    recipe["model_sha256"] = hashlib.sha256(tm.serialize(rebuilt)).hexdigest()
    MODELS_OUT.mkdir(parents=True, exist_ok=True)
    (MODELS_OUT / f"{name}.onnx").write_bytes(tm.serialize(small))
    (MODELS_OUT / f"{name}.json").write_text(recipe_json(recipe))
    return {"name": name, "torch_vs_ort": err, "stripped": len(used)}


def recipe_json(recipe: dict) -> str:
    """JSON with one line per top-level field / initializer (diff-friendly)."""
    lines = []
    for k, v in recipe.items():
        if k == "initializers":
            items = ",\n".join("  " + json.dumps(e) for e in v)
            lines.append(f' "{k}": [\n{items}\n ]')
        else:
            lines.append(f" {json.dumps(k)}: {json.dumps(v)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


# --------------------------------------------------------------------------- digits


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, 2, 1)
        self.fc = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.conv2(x))
        return self.fc(torch.flatten(x, 1))


def make_digits() -> dict:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    torch.manual_seed(0)
    torch.set_num_threads(1)  # reproducible training
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=0)
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    g = torch.Generator().manual_seed(0)
    for _epoch in range(40):
        model.train()
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), 32):
            idx = perm[i:i + 32]
            opt.zero_grad()
            F.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        torch_acc = float((model(torch.from_numpy(xte)).argmax(1).numpy() == yte).mean())

    DIGITS_OUT.mkdir(parents=True, exist_ok=True)
    onnx_path = DIGITS_OUT / "digits_cnn.onnx"
    m = export_onnx(model, torch.from_numpy(xte[:1]), onnx_path, (1, 10))
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    preds = np.array([sess.run(["output"], {"input": xte[i:i + 1]})[0].argmax() for i in range(len(xte))])
    ort_acc = float((preds == yte).mean())
    np.savez_compressed(DIGITS_OUT / "digits_test.npz", x=xte.astype(np.float32), y=yte.astype(np.int64))
    sha = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    (DIGITS_OUT / "mace.yml").write_text(
        "# Deployment file for the digits example (8x8 handwritten digits, scikit-learn's data set).\n"
        "# Generated by scripts/make_test_models.py.\n"
        "library_name: digits\n"
        "target_abis: [host]\n"
        "models:\n"
        "  digits_cnn:\n"
        "    platform: onnx\n"
        "    model_file_path: digits_cnn.onnx\n"
        f"    model_sha256_checksum: {sha}\n"
        "    input_tensors: [input]\n"
        '    input_shapes: ["1,1,8,8"]\n'
        '    input_ranges: ["0,1"]\n'
        "    output_tensors: [output]\n"
        '    output_shapes: ["1,10"]\n'
        "    runtime: cpu+gpu\n"
        "    data_type: fp32_fp32\n"
        "    validation_threshold:\n"
        "      cpu: 0.999\n"
        "      gpu: 0.995\n"
    )
    return {"name": "digits", "torch_acc": torch_acc, "ort_acc": ort_acc, "n_test": len(yte),
            "ops": op_counts(m), "sha256": sha}


# --------------------------------------------------------------------------- verification


def verify(name: str, cache_dir: Path) -> None:
    path = tm.materialize(name, cache_dir)
    m = onnx.load(str(path))
    rng = np.random.default_rng(1234)
    o = np.stack([run_ort(str(path), rng.random((1, 3, 224, 224), dtype=np.float32))[0] for _ in range(8)])
    on = np.stack([run_ort(str(path), rng.standard_normal((1, 3, 224, 224), dtype=np.float32))[0] for _ in range(4)])
    assert np.isfinite(o).all() and np.isfinite(on).all(), f"{name}: non-finite output"
    assert min(o.std(axis=1).min(), on.std(axis=1).min()) > 1e-3, f"{name}: degenerate logits"
    assert len(set(o.argmax(axis=1).tolist())) > 1, f"{name}: same argmax for every input"
    ops = op_counts(m)
    print(f"== {name}: {path.stat().st_size / 1e6:.1f} MB materialized, compact "
          f"{(MODELS_OUT / f'{name}.onnx').stat().st_size / 1e3:.0f} kB; {len(m.graph.node)} nodes; "
          f"{len(m.graph.initializer)} initializers")
    print(f"   logits (uniform[0,1) inputs): min {o.min():.3g} max {o.max():.3g} mean {o.mean():.3g} std/sample "
          f"{', '.join(f'{s:.3g}' for s in o.std(axis=1))}")
    print(f"   argmax uniform[0,1) inputs: {o.argmax(axis=1).tolist()}; standard-normal inputs: "
          f"{on.argmax(axis=1).tolist()} (logits {on.min():.3g}..{on.max():.3g})")
    print("   ops: " + ", ".join(f"{k} {v}" for k, v in sorted(ops.items())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help=f"subset of {BIG_MODELS + ['digits']} (default: all)")
    ap.add_argument("--verify-only", action="store_true", help="only materialize + check the committed models")
    args = ap.parse_args()
    names = args.names or BIG_MODELS + ["digits"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in names:
            if name == "digits":
                if not args.verify_only:
                    r = make_digits()
                    print(f"== digits: test accuracy {r['ort_acc']:.4f} (onnxruntime), {r['torch_acc']:.4f} (torch) "
                          f"on {r['n_test']} held-out images; sha256 {r['sha256']}")
                    print("   ops: " + ", ".join(f"{k} {v}" for k, v in sorted(r["ops"].items())))
                continue
            if name not in ARCHS:
                ap.error(f"unknown model {name}")
            if not args.verify_only:
                r = make_big(name, tmp)
                print(f"built {name}: torch-vs-onnxruntime max abs err {r['torch_vs_ort']:.2e}, "
                      f"{r['stripped']} initializers stored as recipes")
            verify(name, tmp / "cache")


if __name__ == "__main__":
    main()
