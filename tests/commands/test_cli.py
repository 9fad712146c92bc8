"""The command line: the end-to-end path on MNIST-format files, and clear errors."""

from __future__ import annotations

import json

import pytest

from tests.support import run


@pytest.fixture
def trained(mnist_dir, tmp_path, capsys):
    code, out, _ = run(
        capsys,
        "train",
        "--dataset",
        "mnist",
        "--data-dir",
        str(mnist_dir),
        "--preset",
        "clp",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--out",
        str(tmp_path / "clp"),
        "--no-progress",
    )
    assert code == 0, out
    return tmp_path / "clp"


def test_train_then_evaluate_on_mnist_files(trained, mnist_dir, tmp_path, capsys) -> None:
    out_file = tmp_path / "res.json"
    code, out, err = run(
        capsys,
        "evaluate",
        str(trained),
        "--data-dir",
        str(mnist_dir),
        "--preset",
        "baseline",
        "--points",
        "40",
        "--out",
        str(out_file),
        "--no-progress",
    )
    assert code == 0, err
    data = json.loads(out_file.read_text())
    assert data["dataset"] == "mnist" and data["eps"] == 0.3 and data["num_points"] == 40
    assert len(data["subset_indices"]) == 40 and data["preset"] == "baseline"
    assert data["attacks"][0]["config"]["iters"] == 40
    assert "robust accuracy" in out and "randomised" not in out
    assert data["manifest"]["lockstep"] is False  # on a CPU, by default


def test_evaluate_lockstep_is_recorded(trained, mnist_dir, tmp_path, capsys) -> None:
    out_file = tmp_path / "res.json"
    flags = ["--data-dir", str(mnist_dir), "--points", "8", "--no-progress"]
    code, _, err = run(
        capsys,
        "evaluate",
        str(trained),
        "--preset",
        "aa-standard",
        "--lockstep",
        "on",
        "--out",
        str(out_file),
        *flags,
    )
    assert code == 0, err
    assert json.loads(out_file.read_text())["manifest"]["lockstep"] is True


def test_evaluate_free_flags(trained, mnist_dir, tmp_path, capsys) -> None:
    out_file = tmp_path / "res.json"
    code, _, err = run(
        capsys,
        "evaluate",
        str(trained),
        "--data-dir",
        str(mnist_dir),
        "--eps",
        "0.1",
        "--step",
        "0.02",
        "--iters",
        "3",
        "--restarts",
        "2",
        "--no-early-stop",
        "--points",
        "16",
        "--out",
        str(out_file),
        "--no-progress",
    )
    assert code == 0, err
    data = json.loads(out_file.read_text())
    config = data["attacks"][0]["config"]
    assert (config["eps"], config["step"], config["iters"], config["restarts"]) == (0.1, 0.02, 3, 2)
    attacked = [p for p in data["points"] if "pgd" in p["attacks"]]
    assert all(len(p["attacks"]["pgd"]["restart_loss"]) == 2 for p in attacked)


def test_each_preset_keeps_its_own_default_results_file(
    trained, mnist_dir, tmp_path, capsys
) -> None:
    common = ("--data-dir", str(mnist_dir), "--points", "8", "--no-progress")
    for flags in (["--preset", "baseline"], ["--preset", "strong"], ["--iters", "2"]):
        code, _, err = run(capsys, "evaluate", str(trained), *flags, *common)
        assert code == 0, err
    presets = {
        name: json.loads((trained / name).read_text())["preset"]
        for name in ("results-baseline.json", "results.json", "results-custom.json")
    }
    assert presets["results-baseline.json"] == "baseline"
    assert presets["results.json"] == "strong"
    code, _, err = run(capsys, "report", str(trained), "--out", str(tmp_path / "rep"))
    assert code == 0, err  # a run folder's report has a row per results file
    names = [row["name"] for row in json.loads((tmp_path / "rep/report.json").read_text())["rows"]]
    assert names == ["clp", "clp (baseline)", "clp (custom)"]
    for name in ("results.json", "results-baseline.json", "results-custom.json"):
        (trained / name).unlink()
    code, _, err = run(capsys, "report", str(trained))
    assert code != 0 and "no results.json (or results-PRESET.json)" in err
    code, _, err = run(capsys, "report", str(trained / "model.safetensors"))
    assert code != 0 and "is not valid JSON" in err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["evaluate", "{ckpt}", "--eps", "-0.1"], "--eps must be in"),
        (["evaluate", "{ckpt}", "--step", "1.5"], r"step size '1.5' = 1.5 must be in"),
        (["evaluate", "{ckpt}", "--preset", "nope"], "invalid choice"),
        (["evaluate", "{ckpt}", "--dataset", "fashion-mnist"], "is for dataset 'mnist'"),
        (["evaluate", "{missing}"], "no checkpoint"),
        (["train", "--dataset", "imagenet-9000"], "invalid choice"),
        (["train", "--preset", "nope"], "unknown training preset"),
        (["evaluate", "{ckpt}", "--preset", "strong", "--iters", "3"], "not both"),
        (["evaluate", "{ckpt}", "--lockstep", "yes"], "choose from cuda, on, off"),
    ],
)
def test_bad_input_exits_non_zero_with_a_message(trained, tmp_path, capsys, argv, message) -> None:
    argv = [a.format(ckpt=trained, missing=tmp_path / "nothing") for a in argv]
    code, _, err = run(capsys, *argv)
    assert code != 0
    assert message in err


def test_corrupted_data_files_are_reported(trained, mnist_dir, capsys) -> None:
    images = mnist_dir / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[: len(images.read_bytes()) // 2])
    code, _, err = run(
        capsys,
        "evaluate",
        str(trained),
        "--data-dir",
        str(mnist_dir),
        "--preset",
        "baseline",
        "--points",
        "10",
        "--no-progress",
    )
    assert code == 2
    assert "t10k-images-idx3-ubyte" in err


def test_demo_train_writes_report_and_results(mnist_dir, tmp_path, capsys) -> None:
    run_dir = tmp_path / "demo"
    code, out, err = run(
        capsys,
        "demo",
        "--train",
        "--dataset",
        "mnist",
        "--data-dir",
        str(mnist_dir),
        "--epochs",
        "1",
        "--points",
        "24",
        "--restarts",
        "4",
        "--restart-points",
        "8",
        "--grid-points",
        "16",
        "--out",
        str(run_dir),
        "--no-progress",
    )
    assert code == 0, err
    figures = ["surface.png"] + [
        f"{kind}-{name}{suffix}.png"
        for name in ("plain", "clp", "lsq")
        for kind, suffix in (("grid", ""), ("histograms", ""), ("histograms", "-restarts"))
    ]
    for figure in figures:
        assert (run_dir / "figures" / figure).stat().st_size > 1000
    for name in ("plain", "clp", "lsq"):
        data = json.loads((run_dir / name / "results.json").read_text())
        baseline = data["attacks"][0]["robust_accuracy_after"]
        assert data["robust_accuracy"] <= baseline
    report = (run_dir / "report.md").read_text()
    assert "Adversarial accuracy" in report and "clp" in report
    assert "(figures/surface.png)" in report and "(figures/grid-lsq.png)" in report
    assert "(figures/histograms-clp-restarts.png)" in report
    assert "baseline" in out and "$ lpbench surface" in out


def test_demo_evaluates_the_zoo_without_training(tmp_path, capsys) -> None:
    # At eps 0.4 the first attacks break every point, so `strong` ends early on each model;
    # the README's demo at the default radius runs in CI (scripts/readme_demo.py).
    run_dir = tmp_path / "demo"
    code, out, err = run(
        capsys,
        "demo",
        "--eps",
        "0.4",
        "--points",
        "12",
        "--restarts",
        "2",
        "--restart-points",
        "3",
        "--grid-points",
        "4",
        "--out",
        str(run_dir),
        "--no-progress",
    )
    assert code == 0, err
    assert "lpbench train" not in out
    assert "$ lpbench evaluate zoo:mnist-digits/clp --preset strong --eps 0.4 --points 12" in out
    names = [p.name for p in run_dir.iterdir() if (p / "results.json").is_file()]
    assert {"plain", "clp", "lsq"} <= set(names)
    for name in names:
        data = json.loads((run_dir / name / "results.json").read_text())
        assert data["checkpoint"] == f"zoo:mnist-digits/{name}"
    assert (run_dir / "figures" / "surface.png").stat().st_size > 1000
    assert "zoo" in (run_dir / "report.md").read_text()
    assert f"report: {run_dir / 'report.html'}" in out and "lpbench demo --full" in out


def test_evaluation_lines_show_each_attack_the_auto_schedule_and_mismatches(tmp_path) -> None:
    from types import SimpleNamespace

    from lpbench.commands.evaluate import evaluation_lines

    def attack(label, gradients, queries, **more):
        return SimpleNamespace(
            label=label, robust_accuracy_after=0.5, points_attacked=10, points_given_up=0,
            gradients=gradients, queries=queries, config=more, forward_evals=2 * gradients +
            queries, verification_forwards=5, shared_gradients=gradients // 10,
        )  # fmt: skip

    schedule = {
        "budget_per_point": 2000, "shared_spent": 5000, "spent": 12345,
        "spent_per_point_mean": 1234.5,
        "universal_skipped": "too few points", "check": {"verdict": "check: 1 of 9 probes warn"},
        "raised": [
            {"probe": "restarts", "attack": "apgd-ce", "setting": "runs", "from": 100, "to": 400}
        ],
    }  # fmt: skip
    attacks = [attack("apgd-ce", 2000, 0, score="any"), attack("square", 0, 300)]
    result = SimpleNamespace(
        clean_accuracy=1.0, robust_accuracy=0.5, num_points=10, gradients=2000, queries=300,
        forwards=4330,
        eps=0.3, wall_time_s=1.25, attacks=attacks, meta={"schedule": schedule},
        verification_mismatches=[7],
    )  # fmt: skip
    assert evaluation_lines(result, tmp_path / "r.json") == [
        "clean accuracy 100.0%, robust accuracy 50.0% at eps 0.3 over 10 points "
        "(2,000 gradient evaluations, 300 queries, 4,330 forward passes; 200 of the gradients "
        "shared by all points, 1.2 s)",
        "  after apgd-ce               50.0%  (10 points attacked, 2,000 grad evals, "
        "4,005 forward passes, any-iterate scoring)",
        "  after square                50.0%  (10 points attacked, 300 queries, 305 forward "
        "passes)",
        "  auto budget 2,000 gradients + queries per point (and 5,000 in all for the universal "
        "perturbations); spent 12,345 in all, 1234.5 per point on average",
        "  universal perturbations skipped: too few points",
        "  check: 1 of 9 probes warn",
        "  restarts warned: apgd-ce runs raised, cap 100 -> 400 per point",
        "  1 adversarial example(s) failed the re-check and count as robust: data-set indices [7]",
        f"results: {tmp_path / 'r.json'}",
    ]


def test_a_randomised_checkpoint_is_evaluated_with_eot_only_when_asked(
    trained, mnist_dir, tmp_path, capsys
) -> None:
    meta_file = trained / "model.json"
    meta = json.loads(meta_file.read_text())
    meta["model_options"] = {**meta.get("model_options", {}), "input_noise": 0.05}
    meta_file.write_text(json.dumps(meta))  # the masker: noise on every call
    common = ("--data-dir", str(mnist_dir), "--points", "8", "--no-progress")
    code, _, err = run(capsys, "evaluate", str(trained), *common)
    assert code != 0 and "randomised" in err and "--eot-iter 20" in err
    out_file = tmp_path / "rand.json"
    code, out, err = run(
        capsys, "evaluate", str(trained), "--eot-iter", "2", "--out", str(out_file), *common
    )
    assert code == 0, err
    data = json.loads(out_file.read_text())
    assert data["preset"] == "aa-rand" and data["randomised"]["eot_iter"] == [2]
    assert "robust accuracy" in out and "randomised model: 2 draws per gradient" in out
    assert [a["config"]["eot_iter"] for a in data["attacks"]] == [2, 2]
