"""The smoothed ReLU backward pass and APGD with it."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lpbench.attacks import APGD, APGDT
from lpbench.attacks.smooth import SmoothReLUBackward
from lpbench.models import build_model


class SumGate(nn.Module):
    """Two classes: logit 1 is ``scale * relu(sum(x) - threshold)``, logit 0 is 1.

    On a point with ``sum(x)`` below the threshold the ReLU is off and every input
    gradient is exactly 0, but within eps the sum can cross it: a gradient attack cannot
    see the way, a smoothed one can.
    """

    def __init__(self, threshold: float, scale: float = 10.0, relu: str = "module") -> None:
        super().__init__()
        self.threshold, self.scale, self.kind = threshold, scale, relu
        self.relu = nn.ReLU(inplace=relu == "inplace")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = x.flatten(1).sum(dim=1, keepdim=True) - self.threshold
        if self.kind == "functional":
            gate = F.relu(pre)
        elif self.kind == "tensor":
            gate = pre.relu()
        elif self.kind == "tensor_":
            gate = pre.clone().relu_()
        else:
            gate = self.relu(pre)
        return torch.cat([torch.ones_like(gate), self.scale * gate], dim=1)


@pytest.mark.parametrize("kind", ["module", "inplace", "functional", "tensor", "tensor_"])
def test_forward_is_exact_and_backward_is_the_sigmoid(kind):
    model = SumGate(threshold=10.0, relu=kind)
    x = torch.full((3, 20), 0.5) + torch.tensor([[-0.1], [0.0], [0.1]])  # sums 8, 10, 12
    plain = model(x)
    beta = 2.0
    xs = x.clone().requires_grad_(True)
    with SmoothReLUBackward(beta) as mode:
        smooth = model(xs)
        (grad,) = torch.autograd.grad(smooth[:, 1].sum(), xs)
    assert mode.calls == {"relu": 1}
    assert torch.equal(smooth, plain)
    pre = x.sum(dim=1) - 10.0
    expected = 10.0 * torch.sigmoid(beta * pre)[:, None].expand_as(x)
    assert torch.allclose(grad, expected)
    assert grad[0].abs().min() > 0  # the ReLU is off there: its true gradient is 0


@pytest.mark.parametrize(
    ("name", "shape", "relus"), [("lenet", (1, 28, 28), 3), ("resnet20-v2", (3, 32, 32), 19)]
)
def test_model_forward_is_unchanged_and_every_relu_is_smoothed(name, shape, relus):
    """LeNet's ReLUs are modules, the ResNet's calls of F.relu: both are smoothed."""
    torch.manual_seed(0)
    model = build_model(name, shape, 10).eval()
    x = torch.rand(2, *shape)
    with torch.no_grad(), SmoothReLUBackward(1.0) as mode:
        inside = model(x)
    assert mode.calls == {"relu": relus}
    assert torch.equal(inside, model(x))


def test_beta_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        SmoothReLUBackward(0.0)
    with pytest.raises(ValueError, match="smooth_relu must be positive"):
        APGD(0.1, smooth_relu=-1.0)


def test_smoothed_apgd_breaks_a_point_whose_relu_is_off_and_plain_apgd_cannot():
    model = SumGate(threshold=12.0)
    x = torch.full((4, 20), 0.5)  # sum 10; within eps 0.15 the sum reaches 13
    y = torch.zeros(4, dtype=torch.long)
    assert (model(x).argmax(dim=1) == y).all()  # classified correctly
    plain = APGD(0.15, iters=20, seed=0)(model, x, y)
    smooth = APGD(0.15, iters=20, seed=0, smooth_relu=1.0)(model, x, y)
    assert not plain.success.any()
    assert smooth.success.all()
    assert (model(smooth.x_adv).argmax(dim=1) != y).all()
    assert (smooth.x_adv - x).abs().max() <= 0.15 + 1e-6
    # the plain gradient is exactly zero at every start: its runs end after one gradient
    assert plain.cost.gradients == 4
    assert smooth.cost.gradients <= 4 * 21


def test_smoothing_a_model_without_relu_is_an_error():
    model = nn.Sequential(nn.Flatten(), nn.Linear(20, 3), nn.Tanh())
    x, y = torch.rand(2, 20), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="no ReLU"):
        APGDT(0.1, iters=5, targets=2, smooth_relu=1.0)(model, x, y)


def test_config_records_the_smoothing_only_when_set():
    assert "smooth_relu" not in APGD(0.1).config()
    assert APGD(0.1, smooth_relu=3.0).config()["smooth_relu"] == 3.0


class DeadUnitNet(nn.Module):
    """Three classes; class 2's logit is ``10 * relu(sum(x) - 12)``, off on every clean
    point (sum 10) but reachable within eps 0.15 (sum up to 13): its true gradient is 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = F.relu(x.flatten(1).sum(dim=1, keepdim=True) - 12.0)
        return torch.cat([torch.ones_like(gate), -torch.ones_like(gate), 10 * gate], dim=1)


def test_check_flags_relu_masking_and_passes_an_honest_model():
    import lpbench
    from tests.attack_models import trained_mlp

    x = torch.full((6, 1, 4, 5), 0.5)
    y = torch.zeros(6, dtype=torch.long)
    report = lpbench.check(DeadUnitNet(), x, y, 0.15, iters=20, queries=20)
    finding = next(f for f in report.findings if f.probe == "relu-masking")
    assert not finding.ok and finding.evidence["smooth_only"] == 1.0
    assert report.accuracy["smooth-relu"] == 0.0 and report.accuracy["white-box"] == 1.0

    model, x, y = trained_mlp(5, 12)
    honest = lpbench.check(model, x, y, 0.05, iters=10, queries=20)
    assert next(f for f in honest.findings if f.probe == "relu-masking").ok
    linear = nn.Sequential(nn.Flatten(), nn.Linear(64, 5))
    with torch.no_grad():
        y = linear(x).argmax(1)
    skipped = lpbench.check(linear, x, y, 0.05, iters=5, queries=20)
    assert next(f for f in skipped.findings if f.probe == "relu-masking").message.startswith(
        "skipped: the model computes no ReLU"
    )


def test_check_says_why_a_scripted_models_relus_are_not_smoothed() -> None:
    import lpbench

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 5))
    scripted = torch.jit.script(net)
    x = torch.rand(8, 1, 8, 8)
    with torch.no_grad():
        y = net(x).argmax(1)
    report = lpbench.check(scripted, x, y, 0.05, iters=5, queries=20)
    message = next(f for f in report.findings if f.probe == "relu-masking").message
    assert message.startswith("skipped: the model's ReLU-like ops cannot be smoothed")
    assert "TorchScript" in message
