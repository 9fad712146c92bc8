"""A smoothed backward pass through ReLUs and their kin, the forward pass left exact
(BPDA-style).

Logit pairing, logit squeezing and adversarial training on MNIST leave most ReLUs of a
LeNet off on a typical input (in lpbench's digit models 95-98% of the second and third
layers' units for CLP and LSQ): their gradient is 0, so the input gradient sees only the
few units that are on, and gradient attacks stall where a small change would switch
units on. Backpropagating ``sigmoid(beta * x)`` instead of the step ``x > 0`` (the
derivative of a softplus of sharpness ``beta``) lets the gradient see those units. The
forward pass is untouched, so every logit, loss and verdict is the model's own; only the
direction of the steps changes (Athalye et al. 2018 call such replacements BPDA).

Every piecewise-linear kink gets the same treatment, each step ``x > k`` of its
derivative replaced by ``sigmoid(beta * (x - k))``: ReLU6, Hardtanh and ``clamp`` with
scalar bounds (``sigmoid(beta (x - lo)) - sigmoid(beta (x - hi))``), ``clamp_min``,
``clamp_max``, ``threshold``, LeakyReLU and RReLU in eval mode (``a + (1 - a)
sigmoid(beta x)``), Hardsigmoid and Hardswish. ReLU-like ops it sees but cannot smooth
(``clamp`` with tensor bounds, PReLU, RReLU in training mode) and TorchScript modules,
which no function mode sees into, are reported (:func:`relu_facts`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

Slope = Callable[[torch.Tensor], torch.Tensor]


class _Smoothed(torch.autograd.Function):
    """``op(x)`` forward, ``slope(x)`` times the incoming gradient backward."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, op: Callable[[torch.Tensor], torch.Tensor], slope: Slope
    ) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.slope = slope
        return op(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return grad * ctx.slope(x), None, None


@dataclass(frozen=True)
class _Kink:
    """One intercepted call: its form, and the smoothed derivative (None: the form is
    ReLU-like but cannot be smoothed; the form then says why)."""

    form: str
    slope: Slope | None


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], i: int, name: str, default: Any) -> Any:
    """Argument ``i`` (positional) or ``name`` (keyword) of a call, else ``default``."""
    return args[i] if len(args) > i else kwargs.get(name, default)


def _window(beta: float, lo: float | None, hi: float | None) -> Slope:
    """The smoothed derivative of clamping to ``[lo, hi]`` (either end open: None)."""

    def slope(x: torch.Tensor) -> torch.Tensor:
        up = torch.ones_like(x) if lo is None else torch.sigmoid(beta * (x - lo))
        return up if hi is None else up - torch.sigmoid(beta * (x - hi))

    return slope


def _leaky(beta: float, a: float) -> Slope:
    return lambda x: a + (1 - a) * torch.sigmoid(beta * x)


def _hardswish(beta: float) -> Slope:
    """``x * hardsigmoid(x)``: ``hardsigmoid(x) + x`` times its smoothed derivative (the
    mode may be active in the backward pass: no op here is one it intercepts)."""
    window = _window(beta, -3.0, 3.0)

    def slope(x: torch.Tensor) -> torch.Tensor:
        gate = torch.minimum(torch.maximum(x + 3, torch.zeros_like(x)), torch.full_like(x, 6))
        return (gate + x * window(x)) / 6

    return slope


def _relu(beta: float, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Kink:
    return _Kink("relu", _window(beta, 0.0, None))


def _relu6(beta: float, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Kink:
    return _Kink("relu6", _window(beta, 0.0, 6.0))


def _hardtanh(beta: float, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Kink | None:
    lo = float(_arg(args, kwargs, 1, "min_val", -1.0))
    hi = float(_arg(args, kwargs, 2, "max_val", 1.0))
    if lo > hi:  # torch refuses it
        return None
    return _Kink("relu6" if (lo, hi) == (0.0, 6.0) else "hardtanh", _window(beta, lo, hi))


def _leaky_relu(beta: float, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Kink:
    return _Kink("leaky_relu", _leaky(beta, float(_arg(args, kwargs, 1, "negative_slope", 0.01))))


def _rrelu(beta: float, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Kink:
    """In eval mode RReLU is a LeakyReLU of slope ``(lower + upper) / 2``; in training
    mode each slope is random and it is not smoothed."""
    if _arg(args, kwargs, 3, "training", False):
        return _Kink("rrelu in training mode", None)
    lower = float(_arg(args, kwargs, 1, "lower", 1.0 / 8))
    upper = float(_arg(args, kwargs, 2, "upper", 1.0 / 3))
    return _Kink("rrelu", _leaky(beta, (lower + upper) / 2))


def _threshold(beta: float, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Kink:
    at = float(_arg(args, kwargs, 1, "threshold", 0.0))
    return _Kink("threshold", _window(beta, at, None))


def _hardsigmoid(beta: float, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Kink:
    window = _window(beta, -3.0, 3.0)
    return _Kink("hardsigmoid", lambda x: window(x) / 6)


def _hardswish_form(beta: float, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Kink:
    return _Kink("hardswish", _hardswish(beta))


def _prelu(beta: float, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Kink:
    return _Kink("prelu", None)


def _clamp(name: str, lo_at: int | None, hi_at: int | None) -> Callable[..., _Kink | None]:
    """The parser of ``clamp``-like calls: the lower bound is argument ``lo_at`` (keyword
    ``min``), the upper one ``hi_at`` (``max``); None: the op has no such bound."""

    def parse(beta: float, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Kink | None:
        lo = None if lo_at is None else _arg(args, kwargs, lo_at, "min", None)
        hi = None if hi_at is None else _arg(args, kwargs, hi_at, "max", None)
        if "out" in kwargs:
            return _Kink(f"{name} with out=", None)
        if isinstance(lo, torch.Tensor) or isinstance(hi, torch.Tensor):
            return _Kink(f"{name} with tensor bounds", None)
        if (lo is None and hi is None) or (lo is not None and hi is not None and lo > hi):
            return None  # torch refuses it, or a constant: no kink
        return _Kink(name, _window(beta, lo, hi))

    return parse


_nn: Any = torch._C._nn
#: Each function the mode intercepts: its parser and whether it works in place.
_FORMS: dict[Callable[..., Any], tuple[Callable[..., _Kink | None], bool]] = {
    F.relu: (_relu, False),
    torch.relu: (_relu, False),
    torch.Tensor.relu: (_relu, False),
    torch.relu_: (_relu, True),
    torch.Tensor.relu_: (_relu, True),
    F.relu6: (_relu6, False),
    _nn.relu6: (_relu6, False),
    _nn.relu6_: (_relu6, True),
    F.hardtanh: (_hardtanh, False),
    _nn.hardtanh: (_hardtanh, False),
    _nn.hardtanh_: (_hardtanh, True),
    F.leaky_relu: (_leaky_relu, False),
    _nn.leaky_relu: (_leaky_relu, False),
    _nn.leaky_relu_: (_leaky_relu, True),
    F.rrelu: (_rrelu, False),
    torch.rrelu: (_rrelu, False),
    torch.rrelu_: (_rrelu, True),
    F.threshold: (_threshold, False),
    torch.threshold: (_threshold, False),
    torch.threshold_: (_threshold, True),
    F.hardsigmoid: (_hardsigmoid, False),
    _nn.hardsigmoid: (_hardsigmoid, False),
    _nn.hardsigmoid_: (_hardsigmoid, True),
    F.hardswish: (_hardswish_form, False),
    _nn.hardswish: (_hardswish_form, False),
    _nn.hardswish_: (_hardswish_form, True),
    F.prelu: (_prelu, False),
    torch.prelu: (_prelu, False),
    torch.Tensor.prelu: (_prelu, False),
}
for _name in ("clamp", "clip"):
    for _where in (torch, torch.Tensor):
        _FORMS[getattr(_where, _name)] = (_clamp("clamp", 1, 2), False)
        _FORMS[getattr(_where, _name + "_")] = (_clamp("clamp", 1, 2), True)
for _where in (torch, torch.Tensor):
    _FORMS[_where.clamp_min] = (_clamp("clamp_min", 1, None), False)
    _FORMS[_where.clamp_min_] = (_clamp("clamp_min", 1, None), True)
    _FORMS[_where.clamp_max] = (_clamp("clamp_max", None, 1), False)
    _FORMS[_where.clamp_max_] = (_clamp("clamp_max", None, 1), True)


class SmoothReLUBackward(TorchFunctionMode):
    """Within this context every ReLU-like op (``nn.ReLU``, ``nn.ReLU6``,
    ``nn.LeakyReLU``, ``nn.Hardtanh``, ``nn.Threshold``, ``nn.Hardsigmoid``,
    ``nn.Hardswish``, ``nn.RReLU`` in eval mode, their functional, ``torch`` and
    ``Tensor`` forms, in place or not, and ``clamp``, ``clip``, ``clamp_min``,
    ``clamp_max`` with scalar bounds) returns exactly what it returns outside but
    backpropagates its derivative with every step ``x > k`` replaced by
    ``sigmoid(beta * (x - k))``.

    ``calls`` counts the calls it smoothed per form (``{"relu": 3, "relu6": 1}``;
    ``nn.ReLU6``, which calls ``hardtanh(x, 0, 6)``, counts as ``relu6``), ``unsmoothed``
    the ReLU-like calls it saw but left alone (``clamp`` with tensor bounds, PReLU, RReLU
    in training mode). Calls on tensors that need no gradient run unchanged (and count).
    TorchScript modules run unseen: :func:`relu_facts` finds them.
    """

    def __init__(self, beta: float) -> None:
        super().__init__()
        if not beta > 0:
            raise ValueError(f"the smoothing sharpness beta must be positive, got {beta}")
        self.beta = float(beta)
        self.calls: Counter[str] = Counter()
        self.unsmoothed: Counter[str] = Counter()

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        form = _FORMS.get(func)
        if form is None:
            return func(*args, **kwargs)
        if not args and "input" in kwargs:
            kwargs = dict(kwargs)
            args = (kwargs.pop("input"),)
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            return func(*args, **kwargs)
        parse, inplace = form
        kink = parse(self.beta, args, kwargs)
        if kink is None:
            return func(*args, **kwargs)
        if kink.slope is None:
            self.unsmoothed[kink.form] += 1
            return func(*args, **kwargs)
        self.calls[kink.form] += 1
        if not (torch.is_grad_enabled() and x.requires_grad):
            return func(*args, **kwargs)
        rest = args[1:]
        inplace = inplace or bool(kwargs.get("inplace", False))
        if not inplace:
            return _Smoothed.apply(x, lambda t: func(t, *rest, **kwargs), kink.slope)
        smoothed = _Smoothed.apply(
            x.clone(), lambda t: func(t.clone(), *rest, **kwargs), kink.slope
        )
        return x.copy_(smoothed)


def computes_relu(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``model`` computes a ReLU-like op that :class:`SmoothReLUBackward` smooths
    on ``x`` (one forward pass without gradients), so that smoothing changes something."""
    with torch.no_grad(), SmoothReLUBackward(1.0) as mode:
        model(x)
    return bool(mode.calls)


#: TorchScript graph nodes of ReLU-like ops, by the form they are counted under.
_SCRIPTED_OPS = {
    f"aten::{op}{suffix}": op
    for op in (
        *("relu", "relu6", "hardtanh", "leaky_relu", "rrelu", "threshold", "prelu"),
        *("hardsigmoid", "hardswish", "clamp", "clip", "clamp_min", "clamp_max"),
    )
    for suffix in ("", "_")
}


def _nodes(block: Any) -> Iterator[Any]:
    """Every node of a TorchScript graph or block, nested blocks (if, loop) included."""
    for node in block.nodes():
        yield node
        for inner in node.blocks():
            yield from _nodes(inner)


def scripted_relus(model: nn.Module) -> dict[str, dict[str, int]]:
    """The TorchScript modules (scripted or traced) in ``model`` that compute ReLU-like
    ops, which no function mode sees: per module name (``""`` the model itself), the ops
    of its graph (``{"relu": 2}``; ``{"unreadable graph": 1}`` when it cannot be read)."""
    found: dict[str, dict[str, int]] = {}
    read: list[str] = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.jit.ScriptModule):
            continue
        if any(not outer or name.startswith(f"{outer}.") for outer in read):
            continue  # inside a scripted module already read: its graph holds this one
        read.append(name)
        try:
            kinds = [node.kind() for node in _nodes(module.inlined_graph)]
        except (AttributeError, RuntimeError):
            found[name] = {"unreadable graph": 1}
            continue
        ops = Counter(_SCRIPTED_OPS[k] for k in kinds if k in _SCRIPTED_OPS)
        if ops:
            found[name] = dict(ops)
    return found


@dataclass(frozen=True)
class ReLUFacts:
    """The ReLU-like ops of one forward pass of a model on one point.

    ``smoothed``: calls :class:`SmoothReLUBackward` smooths, per form; ``unsmoothed``:
    ReLU-like calls it sees but cannot smooth, per form; ``scripted``: TorchScript modules
    computing ReLU-like ops, which it does not see (:func:`scripted_relus`).
    """

    smoothed: dict[str, int] = field(default_factory=dict)
    unsmoothed: dict[str, int] = field(default_factory=dict)
    scripted: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def computes_relu(self) -> bool:
        """Whether a smoothed backward pass changes something."""
        return bool(self.smoothed)

    def missed(self) -> dict[str, int]:
        """Every ReLU-like op left unsmoothed, per form, scripted ones by module."""
        missed = dict(self.unsmoothed)
        for name, ops in self.scripted.items():
            where = f"TorchScript module {name!r}" if name else "the TorchScript model"
            missed |= {f"{op} in {where}": n for op, n in ops.items()}
        return missed

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: calls per forward pass of one point, smoothed and not, per form."""
        return {"smoothed": dict(self.smoothed), "unsmoothed": self.missed()}

    def partly_smoothed(self) -> str | None:
        """One line saying what a smoothed backward pass leaves out, when it smooths some
        ops but not all; None otherwise."""
        missed = self.missed()
        if not (self.smoothed and missed):
            return None
        return (
            f"the model is only partly smoothed: {_listed(missed)} keep their true gradient "
            f"in the smoothed attacks (smoothed: {_listed(self.smoothed)})"
        )

    def nothing_to_smooth(self) -> str:
        """Why a smoothed backward pass would change nothing (for a model with no
        smoothed op)."""
        missed = self.missed()
        if not missed:
            return "the model computes no ReLU: nothing to smooth"
        return f"the model's ReLU-like ops cannot be smoothed: {_listed(missed)}"


def _listed(counts: dict[str, int]) -> str:
    return ", ".join(f"{form} x{n}" for form, n in counts.items())


def relu_facts(model: nn.Module, x: torch.Tensor) -> ReLUFacts:
    """The :class:`ReLUFacts` of ``model`` on ``x`` (one point; one forward pass without
    gradients, then a look into its TorchScript modules)."""
    with torch.no_grad(), SmoothReLUBackward(1.0) as mode:
        model(x)
    return ReLUFacts(dict(mode.calls), dict(mode.unsmoothed), scripted_relus(model))
