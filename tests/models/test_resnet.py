"""ResNet-20 v2 and ResNet-50 v2 against the layouts of the logit-pairing code."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lpbench.models import build_model
from lpbench.models.resnet_v2 import Conv2dSame, PreActUnit


def _expected_resnet20_params(w: int = 64, classes: int = 10) -> int:
    convs = 3 * 9 * w  # stem, no bias
    cin = w
    bn = 0
    for cout in (w, 2 * w, 4 * w):
        for unit in range(3):
            convs += 9 * cin * cout + 9 * cout * cout
            bn += 2 * (cin + cout)  # two batch norms (scale and shift) per unit
            if unit == 0:
                convs += cin * cout  # 1x1 projection, also in stage 1 (64 -> 64)
            cin = cout
    return convs + bn + 4 * w * classes + classes


def test_resnet20_parameter_count_and_layer_order() -> None:
    model = build_model("resnet20-v2", (3, 32, 32), 10)
    assert sum(p.numel() for p in model.parameters()) == _expected_resnet20_params() == 4_330_570
    names = [name for name, m in model.named_modules() if not list(m.children())]
    assert names[0] == "stem" and names[-1] == "fc"
    stem = model.stem
    assert isinstance(stem, Conv2dSame) and stem.bias is None and stem.out_channels == 64
    units = list(model.units)
    assert len(units) == 9 and all(isinstance(u, PreActUnit) for u in units)
    widths = [u.conv1.out_channels for u in units]
    strides = [u.conv1.stride[0] for u in units]
    assert widths == [64] * 3 + [128] * 3 + [256] * 3
    assert strides == [1, 1, 1, 2, 1, 1, 2, 1, 1]
    assert [u.shortcut is not None for u in units] == [True, False, False] * 3
    assert units[0].shortcut.in_channels == units[0].shortcut.out_channels == 64
    assert [n for n, _ in units[3].named_children()] == ["bn1", "conv1", "bn2", "conv2", "shortcut"]
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            assert m.bias is None
        if isinstance(m, nn.BatchNorm2d):
            assert m.momentum == 0.001 and m.eps == 1e-3 and m.affine
    assert not any(isinstance(m, nn.BatchNorm2d) for m in [model.stem, model.fc])


def test_resnet20_shortcut_takes_the_unnormalised_input() -> None:
    unit = PreActUnit(4, 4, 1, project=True).eval()
    x = torch.randn(2, 4, 8, 8)
    residual = unit.conv2(torch.relu(unit.bn2(unit.conv1(torch.relu(unit.bn1(x))))))
    assert torch.allclose(unit(x), residual + unit.shortcut(x), atol=1e-6)


def test_tf_same_padding_for_stride_two() -> None:
    conv = Conv2dSame(1, 1, 3, stride=2)
    nn.init.ones_(conv.weight)
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 0] = 1.0  # TF pads bottom/right only: the top-left pixel is in window (0, 0)
    out = conv(x)
    assert out.shape == (1, 1, 2, 2) and out[0, 0, 0, 0] == 1 and out.sum() == 1


def test_resnet50_v2_layout() -> None:
    model = build_model("resnet50-v2", (3, 64, 64), 200)
    assert sum(p.numel() for p in model.parameters()) == 23_929_160
    strides = [u.conv2.stride[0] for u in model.units]
    assert len(strides) == 16 and strides == [1, 1, 2, 1, 1, 1, 2] + [1] * 5 + [2, 1, 1, 1]
    assert model.units[0].shortcut is not None and model.units[1].shortcut is None
    assert model.stem.kernel_size == (7, 7) and model.stem.bias is not None
    x = torch.rand(2, 3, 64, 64)
    assert model(x).shape == (2, 200)
    signed = build_model("resnet50-v2", (3, 64, 64), 200, signed_inputs=True)
    signed.load_state_dict(model.state_dict())
    model.eval(), signed.eval()
    assert torch.allclose(signed(x), model(x * 2 - 1), atol=1e-5)
    with pytest.raises(ValueError, match="no option depth"):
        build_model("resnet50-v2", (3, 64, 64), 200, depth=3)
    small = build_model("resnet20-v2", (3, 32, 32), 10, width=4)
    assert small.fc.in_features == 16
