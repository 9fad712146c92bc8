"""The pre-flight and the input check: a newcomer's model or inputs refused with a message
that says what is wrong and what to do, before any attack starts."""

from __future__ import annotations

import importlib
import inspect

import pytest
import torch
from torch import nn

import lpbench
from lpbench.evaluation import LogitsOf, ModelContractError, benchmark, evaluate_model
from tests.support import TinyNet

EPS = 0.1


class DictOut(nn.Module):
    """A model whose forward returns a dict (e.g. a Hugging Face style output)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = TinyNet()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"features": x.flatten(1), "logits": self.net(x)}


class TupleOut(DictOut):
    """A model whose forward returns (features, logits)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        return x.flatten(1)[:, :3, None], self.net(x)


@pytest.fixture
def no_attack(monkeypatch):
    """Fails the test if an evaluation gets as far as running attacks."""

    def started(*args, **kwargs):
        raise AssertionError("an attack started")

    module = importlib.import_module("lpbench.evaluation.benchmark")  # not the function
    monkeypatch.setattr(module, "evaluate", started)


def _points(n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    return x, torch.arange(n) % 4


@pytest.mark.parametrize("preset", [None, "auto", "baseline"])
def test_a_dict_or_tuple_output_is_refused_with_the_adapter_to_use(preset, no_attack) -> None:
    x, y = _points()
    with pytest.raises(ModelContractError) as refused:
        evaluate_model(DictOut(), x, y, eps=EPS, preset=preset, show_progress=False)
    message = str(refused.value)
    assert "returns a dict with keys ['features', 'logits']" in message
    assert "lpbench.LogitsOf(model, 'logits')" in message
    with pytest.raises(ModelContractError, match=r"a tuple of 2 outputs.*LogitsOf\(model, 1\)"):
        evaluate_model(TupleOut(), x, y, eps=EPS, preset=preset, show_progress=False)
    # What the message says to do works.
    assert LogitsOf(DictOut(), "logits")(x).shape == (6, 4)


def test_check_refuses_a_dict_output_before_probing() -> None:
    x, y = _points()
    # The check probes randomised models too (no full contract), but still needs logits.
    with pytest.raises(ModelContractError, match=r"LogitsOf\(model, 'logits'\)"):
        lpbench.check(DictOut(), x, y, EPS, iters=2, restarts=1, queries=10)


def test_uint8_and_channel_less_inputs_say_what_is_expected(no_attack) -> None:
    x, y = _points()
    model = TinyNet()
    as_bytes = (x * 255).to(torch.uint8)
    with pytest.raises(ValueError, match=r"floating point in \[0, 1\], got dtype torch.uint8"):
        evaluate_model(model, as_bytes, y, eps=EPS, preset="baseline", show_progress=False)
    with pytest.raises(ValueError, match=r"x.float\(\) / 255"):
        evaluate_model(model, as_bytes, y, eps=EPS, preset="baseline", show_progress=False)
    expected = r"N x C x H x W, got shape \(6, 8, 8\): add the channel dimension"
    with pytest.raises(ValueError, match=expected):
        evaluate_model(model, x[:, 0], y, eps=EPS, preset="baseline", show_progress=False)
    with pytest.raises(ValueError, match=r"labels must be one class index per input"):
        one_hot = nn.functional.one_hot(y, 4)
        evaluate_model(model, x, one_hot, eps=EPS, preset="baseline", show_progress=False)


def test_nan_or_inf_in_the_inputs_is_blamed_on_the_inputs(no_attack) -> None:
    x, y = _points()
    x[2, 0, 1, 1] = x[2, 0, 3, 3] = x[4, 0, 0, 0] = float("nan")
    x[5, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError) as refused:
        evaluate_model(TinyNet(), x, y, eps=EPS, preset="baseline", show_progress=False)
    message = str(refused.value)
    assert message.startswith("the inputs hold 3 NaN value(s) and 1 infinite value(s)")
    assert "in 3 input(s), the first at index 2" in message
    assert not isinstance(refused.value, ModelContractError) and "model returns" not in message


def test_no_points_is_an_error_not_nan(no_attack) -> None:
    x, y = _points()
    with pytest.raises(ValueError, match="no points: the inputs hold 0 images"):
        evaluate_model(TinyNet(), x[:0], y[:0], eps=EPS, preset="baseline", show_progress=False)
    with pytest.raises(ValueError, match="no points"):
        lpbench.check(TinyNet(), x[:0], y[:0], EPS)


def test_more_points_than_the_split_holds_is_refused(no_attack) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    refused = r"1,000,000 points asked for, .* the largest allowed is 1000"
    with pytest.raises(ValueError, match=refused):
        benchmark(model, "mnist-digits", points=1_000_000, preset="baseline", show_progress=False)


def test_benchmark_defaults_to_the_shipped_data_set() -> None:
    assert inspect.signature(benchmark).parameters["data"].default == "mnist-digits"
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    result = benchmark(model, preset="baseline", points=5, show_progress=False)
    assert result.meta["dataset"] == "mnist-digits" and result.num_points == 5
