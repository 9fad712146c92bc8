"""What an evaluation returns, as people read it: a short repr and a summary."""

from __future__ import annotations

from pathlib import Path

import torch

from lpbench.commands.evaluate import evaluation_lines
from lpbench.evaluation import evaluate_model
from tests.support import TinyNet


def test_repr_is_one_short_line_and_summary_says_what_happened() -> None:
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(6) % 4
    result = evaluate_model(TinyNet(), x, y, eps=0.1, preset="baseline", show_progress=False)
    text = repr(result)
    assert text == (
        f"EvaluationResult(points=6, clean={result.clean_accuracy:.1%}, "
        f"robust={result.robust_accuracy:.1%}, preset='baseline', eps=0.1, "
        f"gradients={result.gradients:,}, queries=0)"
    )
    assert str(result) == text and "tensor" not in text and "\n" not in text
    summary = result.summary().splitlines()
    assert summary[0].startswith(f"clean accuracy {result.clean_accuracy:.1%}, robust accuracy")
    assert "at eps 0.1 over 6 points" in summary[0]
    assert summary[1].startswith("  after baseline")
    assert "points attacked" in summary[1] and "grad evals" in summary[1]
    # The command line prints the same summary, then where the results are.
    assert evaluation_lines(result, Path("r.json")) == [*summary, "results: r.json"]
