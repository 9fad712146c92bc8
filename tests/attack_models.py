"""Small models for the attack tests: a quickly trained MLP, hand-set linear models and a
wrapper that counts the rows the model sees."""

from __future__ import annotations

from functools import cache

import torch
from torch import nn


class Scaled(nn.Module):
    """A model whose logits are multiplied by ``factor`` (huge: float32 softmax saturates)."""

    def __init__(self, model: nn.Module, factor: float) -> None:
        super().__init__()
        self.model = model
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) * self.factor


class Noisy(nn.Module):
    """A randomised model: Gaussian noise of std ``sigma`` on the inputs (``on="input"``)
    or on the logits, in every mode (eval included)."""

    def __init__(self, model: nn.Module, sigma: float, on: str = "input") -> None:
        super().__init__()
        self.model, self.sigma, self.on = model, sigma, on

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.on == "input":
            return self.model(x + self.sigma * torch.randn_like(x))
        out = self.model(x)
        return out + self.sigma * torch.randn_like(out)


def coin_flip() -> nn.Module:
    """A randomised model on 1x8x8 inputs that says class 0 or 1, a coin flip per call
    (the other three of its 5 classes never win), whatever the input."""
    coin = nn.Sequential(nn.Flatten(), nn.Linear(64, 5))
    with torch.no_grad():
        coin[1].weight.zero_()
        coin[1].bias.copy_(torch.tensor([0.0, 0.0, -100.0, -100.0, -100.0]))
    return Noisy(coin, 10.0, on="logits")


@cache
def _trained(classes: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    teacher = torch.randn(classes, 64, generator=gen)
    x = torch.rand(512, 1, 8, 8, generator=gen)
    labels = (x.flatten(1) @ teacher.T).argmax(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, classes))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), labels).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(x).argmax(1)
    return model, x, pred


def trained_mlp(classes: int = 5, n: int = 40) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """An undefended MLP on 1x8x8 inputs (trained in well under a second) and ``n`` inputs
    labelled by the model itself, so every point starts correctly classified (past its
    512 training inputs, fresh ones)."""
    model, x, pred = _trained(classes)
    if n > len(x):
        extra = torch.rand(n - len(x), *x.shape[1:], generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            x, pred = torch.cat([x, extra]), torch.cat([pred, model(extra).argmax(1)])
    return model, x[:n].clone(), pred[:n].clone()


def unbreakable(classes: int = 5, seed: int = 0) -> nn.Module:
    """A linear model on 1x8x8 inputs that predicts class 0 within any eps <= 1."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, classes))
    with torch.no_grad():
        model[1].weight.mul_(0.1)
        model[1].bias.zero_()
        model[1].bias[0] = 100.0
    return model.eval()


def two_way_linear(classes: int = 5) -> nn.Module:
    """Class 0 wins on clean inputs; class 1 is reachable through pixel block A (the close
    boundary) and class 2 only through pixel block B (further away); the rest never win.

    Untargeted attacks head for class 1; an attack targeting class 2 must end in class 2.
    """
    w = torch.zeros(classes, 64)
    w[1, :16] = 1.0  # block A: 16 pixels
    w[2, 16:48] = 1.0  # block B: 32 pixels, class 2 needs more of them
    bias = torch.full((classes,), -50.0)
    bias[0], bias[1], bias[2] = 0.0, -2.0, -6.0
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, classes))
    with torch.no_grad():
        model[1].weight.copy_(w)
        model[1].bias.copy_(bias)
    return model.eval()


class RowwiseNet(nn.Module):
    """A ReLU MLP on 1x8x8 inputs built from products and per-row sums only, so each row's
    logits and gradients are bit-identical whatever the batch (a matrix product's rounding
    can depend on the batch size). Isolates the attacks' own batch invariance."""

    def __init__(self, classes: int = 4, hidden: int = 16, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.w1 = nn.Parameter(torch.randn(hidden, 64, generator=gen) / 8.0)
        self.w2 = nn.Parameter(torch.randn(classes, hidden, generator=gen) / hidden**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu((x.flatten(1)[:, None, :] * self.w1).sum(-1))
        return (hidden[:, None, :] * self.w2).sum(-1)


class Counting(nn.Module):
    """``model`` that counts its passes (``calls``), the rows of every forward pass, and
    of those that will be backpropagated to the input (an input gradient)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.calls = 0
        self.rows = 0
        self.gradient_rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.rows += x.shape[0]
        if torch.is_grad_enabled() and x.requires_grad:
            self.gradient_rows += x.shape[0]
        return self.model(x)


class Quantised(nn.Module):
    """A linear model behind inputs rounded to ``levels`` grey levels: its gradient is
    exactly zero everywhere (``round`` has none), so no gradient step can move a point."""

    def __init__(self, classes: int = 5, levels: int = 4, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.levels = levels
        self.linear = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = self.levels - 1
        return self.linear((x * steps).round().div(steps).flatten(1))
