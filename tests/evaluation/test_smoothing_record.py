"""What an evaluation with smoothed attacks reports: the ReLU-like calls per form in the
results file, one warning when the model is only partly smoothed, and why ``auto`` skips
its smoothed runs on a model whose ReLUs are all out of reach."""

import json
import warnings

import pytest
import torch
from torch import nn

from lpbench.attacks import APGD
from lpbench.evaluation import AttackRequest, NamedAttack, evaluate, prepared, resolve_attacks
from tests.attack_models import trained_mlp

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
EPS = 0.05
PARTLY = "the model is only partly smoothed"


class PartlyScripted(nn.Module):
    """The trained MLP (one ``nn.ReLU``) plus a small TorchScript branch with a ReLU6."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = trained_mlp(5)[0]
        torch.manual_seed(0)
        branch = nn.Sequential(nn.Flatten(), nn.Linear(64, 5), nn.ReLU6())
        self.branch = torch.jit.script(branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x) + 0.1 * self.branch(x)


def _smoothed_attacks() -> list[NamedAttack]:
    return [
        NamedAttack("apgd-smooth3", APGD(EPS, iters=3, smooth_relu=3.0, stream="s3")),
        NamedAttack("apgd-smooth1", APGD(EPS, iters=3, smooth_relu=1.0, stream="s1")),
    ]


def _labelled(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    x = trained_mlp(5, 12)[1]
    with torch.no_grad():
        return x, model(x).argmax(1)


def test_a_partly_smoothed_model_is_warned_once_and_recorded(tmp_path):
    model = PartlyScripted().eval()
    x, y = _labelled(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate(model, x, y, _smoothed_attacks(), batch_size=2, show_progress=False)
    partly = [str(w.message) for w in caught if PARTLY in str(w.message)]
    assert partly == [
        f"{PARTLY}: hardtanh in TorchScript module 'branch' x1 keep their true gradient in "
        "the smoothed attacks (smoothed: relu x1)"
    ]
    assert sum(a.points_attacked for a in result.attacks) > 2  # several blocks, one warning
    expected = {
        "smoothed": {"relu": 1},
        "unsmoothed": {"hardtanh in TorchScript module 'branch'": 1},
    }
    assert result.smoothing == expected
    result.save(tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["smoothing"] == expected


def test_a_wholly_smoothed_model_is_recorded_without_a_warning_and_plain_runs_record_nothing():
    model = trained_mlp(5)[0]
    x, y = _labelled(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all
        result = evaluate(model, x, y, _smoothed_attacks(), show_progress=False)
    assert result.to_dict()["smoothing"] == {"smoothed": {"relu": 1}, "unsmoothed": {}}
    plain = evaluate(model, x, y, [NamedAttack("apgd", APGD(EPS, iters=3))], show_progress=False)
    assert plain.smoothing is None and "smoothing" not in plain.to_dict()


def test_auto_says_why_it_skips_the_smoothed_runs_of_a_scripted_model():
    model = torch.jit.script(trained_mlp(5)[0])
    x, y = _labelled(model)
    with prepared(model, x, y, torch.device("cpu")) as facts:
        assert not facts.computes_relu
        assert facts.relus is not None and facts.relus.scripted == {"": {"relu": 1}}
        chosen = resolve_attacks(AttackRequest("auto", None, EPS), facts=facts)
    assert chosen.schedule is not None
    assert not any("smooth" in a.label for a in chosen.attacks)
    assert chosen.schedule.plan()["smooth_skipped"] == (
        "the model's ReLU-like ops cannot be smoothed: relu in the TorchScript model x1"
    )
