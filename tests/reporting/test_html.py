"""The HTML report, machine facts in the manifest, and the machine warning."""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from torch import nn

from lpbench.attacks import PGD
from lpbench.evaluation import NamedAttack, build_manifest
from lpbench.machine import describe_machine, machine_facts
from lpbench.pipelines.reports import report_for
from lpbench.reporting import machine_warnings, render_html, write_html_report
from lpbench.reporting.html import broken_by_attack

ROOT = Path(__file__).resolve().parents[2]
ZOO = ROOT / "docs" / "results" / "zoo"


@pytest.fixture(scope="module")
def zoo() -> list[dict[str, Any]]:
    """The committed strong-preset results of the zoo's CLP and LSQ digits models."""
    return [json.loads((ZOO / f"mnist-digits-{m}-strong.json").read_text()) for m in ("clp", "lsq")]


def _unrecorded(results: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``results`` from before manifests recorded the machine."""
    out = copy.deepcopy(results)
    out["manifest"].pop("machine", None)
    return out


def _png(path: Path) -> Path:
    Image.new("RGB", (6, 4), (200, 30, 30)).save(path)
    return path


def _on(results: dict[str, Any], **machine: Any) -> dict[str, Any]:
    """A copy of ``results`` recorded on a machine with these facts."""
    out = copy.deepcopy(results)
    out["manifest"]["machine"] = {"cpu": "AMD EPYC", "cpu_capability": "AVX2", "gpu": None}
    out["manifest"]["machine"].update(machine)
    return out


def test_page_is_self_contained_and_holds_the_table(zoo, tmp_path) -> None:
    figure = _png(tmp_path / "surface.png")
    page = render_html(zoo, figures={"Loss surfaces": [figure]}, title="digits")
    assert page.startswith("<!DOCTYPE html>")
    for outside in ('src="http', "src='http", 'href="http', "<link", "<script", "@import", "url("):
        assert outside not in page
    assert all(src.startswith("data:image/") for src in re.findall(r'<img src="([^"]*)"', page))
    encoded = re.search(r'<img src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(encoded) == figure.read_bytes()
    # The seed's columns: clean, baseline and the strongest, bold, for each model.
    for results in zoo:
        clean = f"{100 * results['clean_accuracy']:.1f}%"
        baseline = f"{100 * results['attacks'][0]['robust_accuracy_after']:.1f}%"
        strongest = f"{100 * results['robust_accuracy']:.1f}%"
        row = re.search(rf">{results['name']}</a></td>(.*?)</tr>", page).group(1)
        assert re.findall(r'<td class="num">(.*?)</td>', row) == [
            clean,
            baseline,
            f'<span class="strongest">{strongest}</span>',
        ]
    assert "Adversarial accuracy, baseline" in page and "Adversarial accuracy, strongest" in page
    assert zoo[1]["manifest"]["weights_sha256"] in page
    assert zoo[1]["manifest"]["subset_sha256"] in page
    written = write_html_report(zoo, tmp_path / "out", title="digits")
    assert written == tmp_path / "out" / "report.html"
    assert written.read_text().count("<h3 id=") == 2


def test_strings_from_results_are_escaped(zoo) -> None:
    evil = copy.deepcopy(zoo[0])
    evil["name"] = "<script>alert(1)</script>"
    evil["attacks"][1]["label"] = '"><img src=x onerror=alert(2)>'
    evil["manifest"]["device"] = "<b>cpu</b>"
    page = render_html([evil])
    assert "<script" not in page and "<img src=x" not in page and "<b>cpu</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;cpu&lt;/b&gt;" in page


def test_breakdown_counts_sum_to_the_broken_points(zoo) -> None:
    for results in zoo:
        groups = broken_by_attack(results)
        clean, robust = groups.pop("clean"), groups.pop("robust")
        assert list(groups) == [a["label"] for a in results["attacks"]]
        assert {k: len(v) for k, v in groups.items()} == {
            a["label"]: a["points_broken"] for a in results["attacks"]
        }
        n = results["num_points"]
        broken = sum(map(len, groups.values()))
        assert broken == n - len(clean) - len(robust)
        assert len(robust) == round(results["robust_accuracy"] * n)
        page = render_html([results])
        assert f"{broken:,} broken, {len(clean):,} misclassified clean" in page
        assert "<details>" in page
        first = min(groups["baseline"])
        assert re.search(rf'<div class="indices">{first}, ', page)
        assert f'<td class="num">{sum(a["points_broken"] for a in results["attacks"]):,}' in page


def test_machine_warning_only_when_machines_differ(zoo) -> None:
    clp, lsq = zoo
    same = [_on(clp), _on(lsq)]
    assert machine_warnings(same) == []
    assert machine_warnings([_unrecorded(r) for r in zoo]) == []  # both "unknown"
    assert "Warning" not in render_html(same)

    other = [_on(clp), _on(lsq, cpu_capability="AVX512")]
    (warning,) = machine_warnings(other)
    assert "clp on AMD EPYC (AVX2)" in warning and "lsq on AMD EPYC (AVX512)" in warning
    assert f"<b>Warning:</b> {warning}" in render_html(other)

    gpu = machine_warnings([_on(clp), _on(lsq, gpu="NVIDIA H100", gpu_capability="9.0")])
    assert gpu and "lsq on AMD EPYC (AVX2) + NVIDIA H100 (sm 9.0)" in gpu[0]
    (mixed,) = machine_warnings([_on(clp), _unrecorded(lsq)])
    assert "lsq on unknown" in mixed


def test_report_for_writes_the_page_beside_the_markdown(zoo, tmp_path) -> None:
    run = tmp_path / "run"
    for results in zoo:
        (run / results["name"]).mkdir(parents=True)
        (run / results["name"] / "results.json").write_text(json.dumps(results))
    (run / "figures").mkdir()
    _png(run / "figures" / "surface-clp.png")
    rows, written = report_for([run], title="run", html=True)
    assert set(written) == {"markdown", "csv", "json", "html"}
    assert written["html"] == run / "report.html"
    page = written["html"].read_text()
    assert "<h3>Loss surfaces</h3>" in page and "data:image/png;base64," in page
    assert [row.name for row in rows] == ["clp", "lsq"]
    assert "html" not in report_for([run], title="run")[1]


def test_machine_facts_on_cpu() -> None:
    facts = machine_facts("cpu")
    for key in ("cpu", "cpu_capability", "platform", "torch"):
        assert isinstance(facts[key], str) and facts[key]
    assert facts["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert facts["torch"] == torch.__version__
    assert facts["gpu"] is None and facts["gpu_capability"] is None
    assert json.loads(json.dumps(facts)) == facts
    assert describe_machine(facts) == f"{facts['cpu']} ({facts['cpu_capability']})"
    assert describe_machine(None) == "unknown"


def test_the_manifest_records_the_machine(tiny_net: nn.Module) -> None:
    manifest = build_manifest(
        tiny_net,
        [NamedAttack("baseline", PGD(0.1, 0.01, 2))],
        eps=0.1,
        seed=0,
        indices=[0, 1],
        device=torch.device("cpu"),
        batch_size=2,
        world_size=1,
        data={},
    )
    assert manifest["machine"] == machine_facts("cpu")


def test_screenshot_script_refuses_outside_resources(zoo, tmp_path) -> None:
    spec = importlib.util.spec_from_file_location(
        "screenshot_report", ROOT / "scripts" / "screenshot_report.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    page = render_html(zoo[:1], figures={"Figures": [_png(tmp_path / "a.png")]})
    assert script.problems(page) == []
    broken = base64.b64encode(b"not a png").decode()
    assert script.problems(page.replace("</body>", f'<img src="data:image/png;base64,{broken}">'))
    assert script.problems(page.replace("</body>", '<img src="https://example.org/a.png">'))
    assert script.problems(page.replace("</body>", '<link rel="stylesheet" href="s.css">'))
    assert script.problems(page.replace("</body>", "<img alt=x>"))


def test_an_auto_results_file_has_no_baseline_in_the_page() -> None:
    auto = json.loads((ZOO / "mnist-digits-clp-auto.json").read_text())
    assert auto["attacks"][0]["label"] == "universal"  # auto runs no paper's baseline
    page = render_html([auto])
    row = re.search(rf">{auto['name']}</a></td>(.*?)</tr>", page).group(1)
    cells = re.findall(r'<td class="num">(.*?)</td>', row)
    strongest = f"{100 * auto['robust_accuracy']:.1f}%"
    clean = f"{100 * auto['clean_accuracy']:.1f}%"
    assert cells == [clean, "not run", f'<span class="strongest">{strongest}</span>']
    assert "(universal)" not in page and "baseline column: not run" in page
