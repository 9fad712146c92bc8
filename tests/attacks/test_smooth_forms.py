"""Every ReLU-like form through the smoothed backward pass: exact forward, the analytic
smoothed derivative backward, counted per form; what cannot be smoothed is reported."""

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lpbench.attacks.smooth import ReLUFacts, SmoothReLUBackward, computes_relu, relu_facts

BETA = 2.0


def sig(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(BETA * x)


def window(lo: float, hi: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: sig(x - lo) - sig(x - hi)


def step(at: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: sig(x - at)


def leaky(a: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: a + (1 - a) * sig(x)


def hardswish_slope(x: torch.Tensor) -> torch.Tensor:
    return F.hardsigmoid(x) + x * window(-3, 3)(x) / 6


#: name, the call, the form it counts as, its smoothed derivative (written out here).
FORMS: list[tuple[str, Callable[[torch.Tensor], torch.Tensor], str, Callable[..., torch.Tensor]]]
FORMS = [
    ("nn.ReLU", nn.ReLU(), "relu", sig),
    ("F.relu inplace", lambda x: F.relu(x.clone(), inplace=True), "relu", sig),
    ("nn.ReLU6", nn.ReLU6(), "relu6", window(0, 6)),
    ("F.relu6", F.relu6, "relu6", window(0, 6)),
    ("F.relu6 inplace", lambda x: F.relu6(x.clone(), inplace=True), "relu6", window(0, 6)),
    ("nn.Hardtanh", nn.Hardtanh(-2.0, 3.0), "hardtanh", window(-2, 3)),
    ("F.hardtanh_", lambda x: F.hardtanh_(x.clone(), -1.0, 0.5), "hardtanh", window(-1, 0.5)),
    ("nn.LeakyReLU", nn.LeakyReLU(0.1), "leaky_relu", leaky(0.1)),
    ("F.leaky_relu_", lambda x: F.leaky_relu_(x.clone(), 0.2), "leaky_relu", leaky(0.2)),
    ("nn.RReLU eval", nn.RReLU(0.1, 0.3).eval(), "rrelu", leaky(0.2)),
    ("nn.Threshold", nn.Threshold(0.5, -1.0), "threshold", step(0.5)),
    ("F.threshold_", lambda x: F.threshold_(x.clone(), 0.5, 2.0), "threshold", step(0.5)),
    ("torch.clamp(min=0)", lambda x: torch.clamp(x, min=0), "clamp", sig),
    ("x.clamp(0)", lambda x: x.clamp(0), "clamp", sig),
    ("x.clamp(max=1)", lambda x: x.clamp(max=1.0), "clamp", lambda x: 1 - sig(x - 1)),
    ("torch.clip(-1, 1)", lambda x: torch.clip(x, -1, 1), "clamp", window(-1, 1)),
    ("x.clamp_(0, 6)", lambda x: x.clone().clamp_(0, 6), "clamp", window(0, 6)),
    ("x.clamp_min(0)", lambda x: x.clamp_min(0), "clamp_min", sig),
    ("x.clamp_min_(0.5)", lambda x: x.clone().clamp_min_(0.5), "clamp_min", step(0.5)),
    ("torch.clamp_max(1)", lambda x: torch.clamp_max(x, 1), "clamp_max", lambda x: 1 - sig(x - 1)),
    ("nn.Hardsigmoid", nn.Hardsigmoid(), "hardsigmoid", lambda x: window(-3, 3)(x) / 6),
    ("nn.Hardswish", nn.Hardswish(), "hardswish", hardswish_slope),
]  # fmt: skip


def kinked_points() -> torch.Tensor:
    """Values on every side of every kink above (and on some), float64."""
    return torch.linspace(-8, 8, 65, dtype=torch.float64).view(5, 13)


@pytest.mark.parametrize(
    ("call", "form", "slope"), [f[1:] for f in FORMS], ids=[f[0] for f in FORMS]
)
def test_each_form_is_exact_forward_and_smoothed_backward(call, form, slope):
    x = kinked_points().requires_grad_(True)
    plain = call(x.detach())
    with SmoothReLUBackward(BETA) as mode:
        out = call(x)
        (grad,) = torch.autograd.grad((out * torch.arange(13.0, dtype=x.dtype)).sum(), x)
    assert torch.equal(out.detach(), plain)
    assert mode.calls == {form: 1} and not mode.unsmoothed
    expected = slope(x.detach()) * torch.arange(13.0, dtype=x.dtype)
    torch.testing.assert_close(grad, expected, rtol=1e-12, atol=1e-12)
    (true,) = torch.autograd.grad((call(x) * torch.arange(13.0, dtype=x.dtype)).sum(), x)
    assert not torch.equal(grad, true)  # the smoothing changed the gradient


def test_forms_without_gradient_pass_through_and_integer_clamps_are_not_counted():
    x = kinked_points()
    with torch.no_grad(), SmoothReLUBackward(BETA) as mode:
        relu6 = F.relu6(x)
        index = torch.arange(5).clamp(1, 3)
    assert torch.equal(relu6, F.relu6(x)) and index.tolist() == [1, 1, 2, 3, 3]
    assert mode.calls == {"relu6": 1}


@pytest.mark.parametrize(
    ("call", "form"),
    [
        (lambda x: x.clamp(min=torch.zeros_like(x)), "clamp with tensor bounds"),
        (lambda x: torch.clamp_min(x, x.new_tensor(0.0)), "clamp_min with tensor bounds"),
        (nn.PReLU().double(), "prelu"),
        (nn.RReLU().train(), "rrelu in training mode"),
    ],
    ids=["clamp-tensor", "clamp_min-tensor", "prelu", "rrelu-train"],
)  # fmt: skip
def test_relu_like_ops_it_cannot_smooth_are_reported_and_left_exact(call, form):
    x = kinked_points().requires_grad_(True)
    torch.manual_seed(0)
    plain = call(x)
    (true,) = torch.autograd.grad(plain.sum(), x)
    torch.manual_seed(0)
    with SmoothReLUBackward(BETA) as mode:
        out = call(x)
        (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(out, plain) and torch.equal(grad, true)
    assert mode.unsmoothed == {form: 1} and not mode.calls


class Mixed(nn.Module):
    """Two classes; logit 1 is ``relu6(relu(s - 10) * 4)`` with ``s = sum(x)`` and a ReLU
    on the way in: three smoothed calls, two forms."""

    def __init__(self) -> None:
        super().__init__()
        self.relu, self.relu6 = nn.ReLU(), nn.ReLU6()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(x.flatten(1)).sum(dim=1, keepdim=True) - 10.0
        gate = self.relu6(F.relu(pre) * 4)
        return torch.cat([torch.ones_like(gate), gate], dim=1)


def test_a_model_mixing_relu_and_relu6_is_counted_per_form_and_smoothed_through_both():
    model = Mixed()
    x = torch.full((3, 20), 0.5, dtype=torch.float64) + torch.tensor([[-0.1], [0.0], [0.2]])
    facts = relu_facts(model, x[:1])
    assert facts == ReLUFacts({"relu": 2, "relu6": 1}, {}, {})
    assert facts.computes_relu and facts.partly_smoothed() is None
    assert facts.to_dict() == {"smoothed": {"relu": 2, "relu6": 1}, "unsmoothed": {}}
    xs = x.clone().requires_grad_(True)
    with SmoothReLUBackward(BETA) as mode:
        out = model(xs)
        (grad,) = torch.autograd.grad(out[:, 1].sum(), xs)
    assert mode.calls == {"relu": 2, "relu6": 1}  # per forward pass, whatever the batch
    assert torch.equal(out, model(x))
    pre = x.sum(dim=1) - 10.0
    inner = 4 * pre.clamp_min(0)
    expected = (sig(inner) - sig(inner - 6)) * 4 * sig(pre)
    torch.testing.assert_close(grad, expected[:, None] * sig(x), rtol=1e-12, atol=1e-12)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_a_scripted_model_is_reported_as_not_smoothed():
    plain = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3), nn.LeakyReLU())
    x = torch.rand(1, 6)
    scripted = torch.jit.script(plain)
    traced = torch.jit.trace(plain, x)
    for model in (scripted, traced):
        facts = relu_facts(model, x)
        assert not facts.computes_relu and not computes_relu(model, x)
        assert facts.scripted == {"": {"relu": 1, "leaky_relu": 1}}
        assert facts.nothing_to_smooth() == (
            "the model's ReLU-like ops cannot be smoothed: relu in the TorchScript model x1, "
            "leaky_relu in the TorchScript model x1"
        )
    inside = nn.Sequential(nn.ReLU(), torch.jit.script(nn.Sequential(nn.Linear(6, 3), nn.ReLU6())))
    facts = relu_facts(inside, x)
    assert facts.smoothed == {"relu": 1} and facts.scripted == {"1": {"hardtanh": 1}}
    assert facts.to_dict()["unsmoothed"] == {"hardtanh in TorchScript module '1'": 1}
    assert facts.partly_smoothed() == (
        "the model is only partly smoothed: hardtanh in TorchScript module '1' x1 keep their "
        "true gradient in the smoothed attacks (smoothed: relu x1)"
    )
    no_relu = nn.Sequential(torch.jit.script(nn.Linear(6, 3)))
    assert relu_facts(no_relu, x) == ReLUFacts()
    assert ReLUFacts().nothing_to_smooth() == "the model computes no ReLU: nothing to smooth"
