"""The model zoo: every shipped model loads, carries its record, and has the stored accuracy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from lpbench import checkpoint
from lpbench.data import dataset_eval_subset, load_dataset
from lpbench.evaluation import predict
from lpbench.io import read_json
from lpbench.pipelines.reports import zoo_listing
from lpbench.pipelines.steps import beside
from lpbench.training import load_checkpoint, resolve_checkpoint, save_checkpoint
from lpbench.zoo import ZOO_DIR, ZooEntry, ZooError, export_to_zoo, list_entries, load
from tests.support import TinyNet

ENTRIES = list_entries()


def test_the_zoo_ships_the_paper_rows_within_its_size_budget() -> None:
    names = {entry.name for entry in ENTRIES}
    assert {"mnist-digits/plain", "mnist-digits/clp", "mnist-digits/lsq"} <= names
    assert any(entry.meta["objective"]["at"] > 0 for entry in ENTRIES), "no AT model"
    size = sum(path.stat().st_size for path in ZOO_DIR.rglob("*") if path.is_file())
    assert size <= 30 * 2**20


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_zoo_model_metadata_and_clean_accuracy(entry: ZooEntry) -> None:
    zoo = entry.zoo
    assert zoo["name"] == entry.name and zoo["precision"] == "float16"
    assert (
        zoo["command"].startswith("lpbench train ")
        and f"--preset {entry.meta['preset']}" in (zoo["command"])
    )
    assert zoo["training_images"] > 0 and zoo["training_seconds"] > 0
    assert entry.meta["dataset"] == entry.name.split("/")[0]
    assert set(zoo["robust_accuracy"]) >= {"baseline", "strong"}
    with safe_open(str(entry.weights), framework="pt") as handle:
        assert {handle.get_tensor(k).dtype for k in handle.keys()} == {torch.float16}  # noqa: SIM118
    model = load(entry.name)
    assert not model.training
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    dataset = entry.meta["dataset"]
    test = load_dataset(dataset, "test", download=False)
    subset = test.subset(dataset_eval_subset(dataset, len(test), zoo["eval_points"]))
    correct = predict(model, subset.images, 500, torch.device("cpu")) == subset.labels
    assert int(correct.sum()) / len(correct) == zoo["clean_accuracy"]


def test_zoo_references_resolve_everywhere_a_checkpoint_goes() -> None:
    name = ENTRIES[0].name
    model, meta = load_checkpoint(f"zoo:{name}")
    assert meta["zoo"]["name"] == name and isinstance(model, torch.nn.Module)
    assert beside(f"zoo:{name}", "results.json") == Path(
        "runs", "zoo", name.replace("/", "-"), "results.json"
    )
    with pytest.raises(ZooError, match=r"no zoo model 'mnist-digits/nope'.*mnist-digits/clp"):
        resolve_checkpoint("zoo:mnist-digits/nope")
    listing = "\n".join(zoo_listing())
    assert all(entry.name in listing for entry in ENTRIES)


def test_export_writes_half_precision_and_the_record(tmp_path: Path) -> None:
    net = TinyNet()
    save_checkpoint(
        tmp_path / "run" / "model.safetensors",
        net,
        {"model": "tiny", "dataset": "mnist-digits", "input_shape": [1, 8, 8], "num_classes": 4},
    )
    out = export_to_zoo(
        tmp_path / "run", "mnist-digits/tiny", {"command": "x", "clean_accuracy": 0.5}, tmp_path
    )
    with safe_open(str(out), framework="pt") as handle:
        weight = handle.get_tensor("body.0.weight")
    assert weight.dtype == torch.float16
    assert torch.equal(weight, net.body[0].weight.detach().half())
    meta = read_json(out.with_suffix(".json"))
    assert meta["zoo"]["clean_accuracy"] == 0.5 and len(meta["zoo"]["source_sha256"]) == 64
    with pytest.raises(ZooError, match="must be mnist-digits/<entry>"):
        export_to_zoo(tmp_path / "run", "cifar10/tiny", {}, tmp_path)


def test_checkpoint_resolves_zoo_names_below_the_zoo() -> None:
    name = ENTRIES[0].name
    weights = checkpoint.ZOO_DIR / name / checkpoint.WEIGHTS_NAME
    assert checkpoint.ZOO_DIR == ZOO_DIR and checkpoint.zoo_names() == [e.name for e in ENTRIES]
    assert checkpoint.resolve_checkpoint(f"zoo:{name}") == weights == checkpoint.zoo_path(name)
    with pytest.raises(checkpoint.ZooError, match="no zoo model 'mnist-digits/nope'"):
        checkpoint.read_checkpoint_meta("zoo:mnist-digits/nope")
    tree = ast.parse(Path(checkpoint.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and m.startswith(("lpbench.training", "lpbench.zoo"))}
