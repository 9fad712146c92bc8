"""Pre-activation ResNets as the logit-pairing code built them (checked against its source).

``ResNet20V2`` is the CIFAR-10 model of the MNIST/CIFAR-10 code, hand-written there in
TensorFlow:

- a 3x3 stem convolution with neither batch norm nor ReLU;
- 3 stages of 3 units (widths w, 2w, 4w with w = 64); a unit is BN-ReLU-conv3x3 twice,
  its first convolution carrying the stage's stride (1, 2, 2);
- the first unit of every stage adds a 1x1 projection (strided like the unit), even in
  stage 1 where the width does not change; the other units add the identity. The
  shortcut takes the unit's input *before* its batch norm. (TensorFlow's and slim's
  ResNet v2 project the pre-activated input instead; this code did not.)
- after the last unit a ReLU but no batch norm, global average pooling, a dense layer
  with bias;
- batch norm with scale and shift, decay 0.999 (PyTorch momentum 0.001), eps 1e-3;
  convolutions without bias, 'SAME' padding (for stride 2: one row/column of zeros at
  the bottom/right only, as TensorFlow pads); He initialisation from a normal
  distribution truncated at two standard deviations.

``ResNet50V2`` is the Tiny ImageNet model: slim's ``resnet_v2_50`` as the ALP code used it
(root 7x7/2 convolution with bias and no BN, 3x3/2 max pool, bottleneck units
[64x3, 128x4, 256x6, 512x3] with the stride on the *last* unit of the first three stages,
identity shortcuts (subsampled) where the width holds and otherwise a 1x1 projection of
the pre-activated input, a final BN-ReLU, global average pooling and a dense layer; batch
norm decay 0.997, eps 1e-5; slim's truncated He initialisation). On 64x64 inputs the
last feature map is 2x2.

Both take inputs in [0, 1]; ``signed_inputs=True`` maps them to [-1, 1] inside the model
(the released ALP ImageNet weights, which the fine-tuned Tiny ImageNet row starts from,
expect that range). ``width`` scales every channel count (64 is the real model; tests use
small widths to stay fast).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _tf_same_pad(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pad as TensorFlow's 'SAME' does: the odd pixel goes to the bottom/right."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)


class Conv2dSame(nn.Conv2d):
    """A convolution with TensorFlow 'SAME' padding (asymmetric for even inputs, stride 2)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, bias: bool = False):
        super().__init__(cin, cout, kernel, stride=stride, padding=0, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        return super().forward(_tf_same_pad(x, k, s))


def _tf_he_init(module: nn.Module, slim: bool = False) -> None:
    """He (fan-in, scale 2) normal weights truncated at two standard deviations, zero biases.

    TensorFlow's ``variance_scaling_initializer`` divides the standard deviation by 0.8796
    (the std of a normal truncated at 2) so the truncated draw has variance 2 / fan_in;
    slim's ``layers.variance_scaling_initializer`` multiplies the variance by 1.3 instead.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            fan_in = m.weight[0].numel()
            if slim:
                std = math.sqrt(1.3 * 2.0 / fan_in)
            else:
                std = math.sqrt(2.0 / fan_in) / 0.87962566103423978
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class PreActUnit(nn.Module):
    """BN-ReLU-conv3x3(stride), BN-ReLU-conv3x3, plus a shortcut from the raw input."""

    def __init__(self, cin: int, cout: int, stride: int, project: bool) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-3, momentum=0.001)
        self.conv1 = Conv2dSame(cin, cout, 3, stride)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.001)
        self.conv2 = Conv2dSame(cout, cout, 3)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + (x if self.shortcut is None else self.shortcut(x))


class ResNet20V2(nn.Module):
    """The CIFAR-10 pre-activation ResNet-20 of the logit-pairing code (see module doc)."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        width: int = 64,
        signed_inputs: bool = False,
    ) -> None:
        super().__init__()
        self.signed_inputs = signed_inputs
        self.stem = Conv2dSame(in_channels, width, 3)
        units: list[nn.Module] = []
        cin = width
        for cout, stride in ((width, 1), (2 * width, 2), (4 * width, 2)):
            for i in range(3):
                first = i == 0
                units.append(PreActUnit(cin, cout, stride if first else 1, project=first))
                cin = cout
        self.units = nn.Sequential(*units)
        self.fc = nn.Linear(cin, num_classes)
        _tf_he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.signed_inputs:
            x = x * 2 - 1
        out = F.relu(self.units(self.stem(x)))
        return self.fc(out.mean(dim=(2, 3)))


class Bottleneck(nn.Module):
    """slim's bottleneck v2: pre-activation, 1x1 -> 3x3(stride) -> 1x1 (x4 width)."""

    def __init__(self, cin: int, depth: int, bottleneck: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.preact = nn.BatchNorm2d(cin, eps=1e-5, momentum=0.003)
        self.shortcut = None if cin == depth else nn.Conv2d(cin, depth, 1, stride=stride, bias=True)
        self.conv1 = nn.Conv2d(cin, bottleneck, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(bottleneck, eps=1e-5, momentum=0.003)
        # slim's conv2d_same pads symmetrically (k - 1 in total) before a strided conv.
        self.conv2 = nn.Conv2d(bottleneck, bottleneck, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(bottleneck, eps=1e-5, momentum=0.003)
        self.conv3 = nn.Conv2d(bottleneck, depth, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.preact(x))
        if self.shortcut is None:
            short = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        else:
            short = self.shortcut(pre)
        out = F.relu(self.bn1(self.conv1(pre)))
        out = F.relu(self.bn2(self.conv2(out)))
        return short + self.conv3(out)


class ResNet50V2(nn.Module):
    """slim's ResNet-50 v2 as trained on Tiny ImageNet by the ALP code (see module doc)."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 200,
        width: int = 64,
        signed_inputs: bool = False,
    ) -> None:
        super().__init__()
        self.signed_inputs = signed_inputs
        self.stem = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=True)
        units: list[nn.Module] = []
        cin = width
        for scale, count, stride in ((1, 3, 2), (2, 4, 2), (4, 6, 2), (8, 3, 1)):
            base = width * scale
            for i in range(count):
                last = i == count - 1
                units.append(Bottleneck(cin, 4 * base, base, stride if last else 1))
                cin = 4 * base
        self.units = nn.Sequential(*units)
        self.postnorm = nn.BatchNorm2d(cin, eps=1e-5, momentum=0.003)
        self.fc = nn.Linear(cin, num_classes)
        _tf_he_init(self, slim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.signed_inputs:
            x = x * 2 - 1
        out = self.stem(x)
        out = F.max_pool2d(_tf_same_pad(out, 3, 2, value=float("-inf")), 3, stride=2)
        out = F.relu(self.postnorm(self.units(out)))
        return self.fc(out.mean(dim=(2, 3)))
