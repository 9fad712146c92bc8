"""Importing the paper's TensorFlow checkpoints: logits equal TensorFlow's, clear errors.

The fixtures under tests/fixtures/tf were written by scripts/make_tf_fixtures.py with
TensorFlow (the original forward passes rebuilt there, narrow widths); these tests need
only lpbench.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from tqdm import tqdm

import lpbench
from lpbench.cli import main
from lpbench.importers.tf_checkpoint import TFCheckpoint, TFCheckpointError, crc32c
from lpbench.training import load_checkpoint
from tests.support import write_cifar10_archive

FIXTURES = Path(__file__).parents[1] / "fixtures" / "tf"
CASES = [
    ("lenet", "mnist", "lenet", {"width": 4, "hidden": 32}),
    ("resnet20", "cifar10", "resnet20-v2", {"width": 4, "signed_inputs": False}),
    ("resnet50", "tiny-imagenet", "resnet50-v2", {"width": 2, "signed_inputs": False}),
]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def _logits(run_dir: Path, inputs: np.ndarray) -> np.ndarray:
    model, _ = load_checkpoint(run_dir)
    with torch.no_grad():
        return model(torch.from_numpy(inputs)).numpy()


def _relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def test_crc32c_known_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0 and crc32c(b"a") == 0xC1D04330


def test_reader_lists_training_variables_beside_the_model() -> None:
    ckpt = TFCheckpoint(FIXTURES / "resnet50" / "model.ckpt.index")  # suffix is accepted
    names = set(ckpt.entries)
    w = "resnet_v2_50/conv1/weights"
    assert {w, f"{w}/Adam", f"{w}/Adam_1", f"{w}/ExponentialMovingAverage"} <= names
    assert ckpt.entries[w].shape == (7, 7, 3, 2) and ckpt.entries["global_step"].dtype == 9
    assert ckpt.read("global_step").shape == ()


@pytest.mark.parametrize(("folder", "dataset", "arch", "options"), CASES)
def test_imported_logits_equal_tensorflow(tmp_path, folder, dataset, arch, options) -> None:
    expected = np.load(FIXTURES / folder / "expected.npz")
    path = lpbench.import_tf(
        FIXTURES / folder / "model.ckpt", arch=arch, dataset=dataset, out=tmp_path / "run"
    )
    assert path == tmp_path / "run" / "model.safetensors"
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["model"] == arch and meta["dataset"] == dataset
    assert meta["model_options"] == options
    provenance = meta["tf_import"]
    assert provenance["source_sha256"] == {
        name: hashlib.sha256((FIXTURES / folder / name).read_bytes()).hexdigest()
        for name in ("model.ckpt.index", "model.ckpt.data-00000-of-00001")
    }
    mapped = {m["tf"] for m in provenance["variable_map"]}
    assert mapped | set(provenance["ignored"]) == set(
        TFCheckpoint(FIXTURES / folder / "model.ckpt").entries
    )
    assert all(k.endswith("num_batches_tracked") for k in provenance["not_in_checkpoint"])
    ours = _logits(tmp_path / "run", expected["inputs"])
    assert _relative_error(ours, expected["logits"]) <= 1e-4
    assert ours.argmax(1).tolist() == expected["logits"].argmax(1).tolist()


def test_signed_inputs_and_moving_averages_are_reproduced(tmp_path) -> None:
    expected = np.load(FIXTURES / "resnet50" / "expected.npz")
    prefix = FIXTURES / "resnet50" / "model.ckpt"
    common = {"arch": "resnet50-v2", "dataset": "tiny-imagenet"}
    lpbench.import_tf(prefix, out=tmp_path / "signed", signed_inputs=True, **common)
    signed = _logits(tmp_path / "signed", expected["inputs"])
    assert _relative_error(signed, expected["logits_signed"]) <= 1e-4
    assert _relative_error(signed, expected["logits"]) > 1e-2
    lpbench.import_tf(prefix, out=tmp_path / "ema", ema=True, **common)
    ema = _logits(tmp_path / "ema", expected["inputs"])
    assert _relative_error(ema, expected["logits_ema"]) <= 1e-4
    assert _relative_error(ema, expected["logits"]) > 1e-3
    meta = json.loads((tmp_path / "ema" / "model.json").read_text())["tf_import"]
    assert meta["variable_map"][0]["tf"] == "resnet_v2_50/conv1/weights/ExponentialMovingAverage"


def test_a_folder_resolves_through_its_checkpoint_file(tmp_path) -> None:
    folder = tmp_path / "train_dir"
    shutil.copytree(FIXTURES / "lenet", folder)
    for path in folder.glob("model.ckpt.*"):
        path.rename(folder / path.name.replace("model.ckpt", "model.ckpt-1200"))
    assert TFCheckpoint(folder).prefix == folder / "model.ckpt-1200"  # the only index
    shutil.copy(folder / "model.ckpt-1200.index", folder / "model.ckpt-900.index")
    with pytest.raises(lpbench.TFImportError, match="holds 2 checkpoint indexes"):
        lpbench.import_tf(folder, arch="lenet", dataset="mnist", out=tmp_path / "a")
    (folder / "checkpoint").write_text(
        'model_checkpoint_path: "model.ckpt-1200"\nall_model_checkpoint_paths: "model.ckpt-900"\n'
    )
    lpbench.import_tf(folder, arch="lenet", dataset="mnist", out=tmp_path / "b")
    meta = json.loads((tmp_path / "b" / "model.json").read_text())["tf_import"]
    assert meta["checkpoint_prefix"].endswith("model.ckpt-1200")


def test_reader_rejects_files_that_are_not_checkpoints(tmp_path) -> None:
    index = tmp_path / "model.ckpt.index"
    index.write_bytes(b"\0" * 64)
    with pytest.raises(lpbench.TFImportError, match="not a TensorFlow checkpoint index"):
        lpbench.import_tf(
            tmp_path / "model.ckpt", arch="lenet", dataset="mnist", out=tmp_path / "r"
        )
    raw = bytearray((FIXTURES / "lenet" / "model.ckpt.index").read_bytes())
    raw[10] ^= 0xFF  # inside the first data block
    index.write_bytes(bytes(raw))
    with pytest.raises(TFCheckpointError, match=r"model.ckpt.index: .*crc32c of a data block"):
        TFCheckpoint(index)
    assert not (tmp_path / "r").exists()


def _broken_copy(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    shutil.copytree(
        FIXTURES / ("lenet" if name in ("truncated", "flipped") else f"broken/{name}"), folder
    )
    data = folder / "model.ckpt.data-00000-of-00001"
    if name == "truncated":
        data.write_bytes(data.read_bytes()[:-100])
    elif name == "flipped":
        raw = bytearray(data.read_bytes())
        ckpt = TFCheckpoint(folder / "model.ckpt")
        raw[ckpt.entries["fc1_vars/weights"].offset + 7] ^= 0x10
        data.write_bytes(bytes(raw))
    return folder / "model.ckpt"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing", r"missing variables: fc2_vars/biases$"),
        ("extra", r"has no place for: conv3_vars/weights$"),
        (
            "shape",
            r"wrong shapes for lpbench's lenet on mnist: 'fc2_vars/weights' has shape \[32, 11\],"
            r" classifier.3.weight needs \[32, 10\]; 'fc2_vars/biases' has shape \[11\], "
            r"classifier.3.bias needs \[10\]$",
        ),
        ("truncated", r"data file .* is truncated: variable '.*' needs bytes"),
        ("flipped", r"variable 'fc1_vars/weights' .* fails its crc32c check"),
    ],
)
def test_cli_errors_name_the_problem_and_write_nothing(tmp_path, capsys, name, message) -> None:
    prefix = _broken_copy(tmp_path, name)
    out = tmp_path / "runs" / "imported"
    args = ["--arch", "lenet", "--dataset", "mnist", "--out", str(out), "--no-progress"]
    code, _, err = run(capsys, "import-tf", str(prefix), *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lpbench import-tf: error: ")
    assert re.search(message, lines[0]), lines[0]
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


@pytest.mark.parametrize("progress", [True, False])
def test_cli_shows_a_bar_over_the_bytes_read_unless_told_not_to(tmp_path, capsys, progress) -> None:
    prefix = FIXTURES / "resnet50" / "model.ckpt"
    args = ["--arch", "resnet50-v2", "--dataset", "tiny-imagenet", "--out", str(tmp_path / "r")]
    code, out, err = run(
        capsys, "import-tf", str(prefix), *args, *([] if progress else ["--no-progress"])
    )
    assert code == 0, err
    weights = tmp_path / "r" / "model.safetensors"
    assert out.splitlines() == [f"imported {prefix} as resnet50-v2 for tiny-imagenet: {weights}"]
    if progress:
        mapped = json.loads((tmp_path / "r" / "model.json").read_text())["tf_import"]
        ckpt = TFCheckpoint(prefix)
        total = sum(ckpt.entries[m["tf"]].size for m in mapped["variable_map"])
        assert total < ckpt.data_paths[0].stat().st_size  # the Adam slots are not read
        size = re.escape(tqdm.format_sizeof(total))
        assert re.search(rf"reading variables: +0%.* 0\.00/{size} ", err), err
    else:
        assert err == ""
    expected = np.load(FIXTURES / "resnet50" / "expected.npz")
    assert _relative_error(_logits(tmp_path / "r", expected["inputs"]), expected["logits"]) <= 1e-4


def test_cli_refuses_an_existing_run_and_a_wrong_range(tmp_path, capsys) -> None:
    prefix = str(FIXTURES / "lenet" / "model.ckpt")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("x")
    args = ["--arch", "lenet", "--dataset", "mnist", "--out"]
    code, _, err = run(capsys, "import-tf", prefix, *args, str(tmp_path / "taken"))
    assert code == 2 and "already exists" in err
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]
    code, _, err = run(capsys, "import-tf", prefix, *args, str(tmp_path / "r"), "--signed-inputs")
    assert code == 2 and "[0, 1]" in err and not (tmp_path / "r").exists()
    code, _, err = run(
        capsys,
        "import-tf",
        prefix,
        "--arch",
        "resnet20-v2",
        "--dataset",
        "cifar10",
        "--out",
        str(tmp_path / "r"),
    )
    assert code == 2 and "missing variables: batch-norm-conv2/gamma" in err
    assert "has no place for: conv1_vars/biases" in err


def _label_by_model(archive: Path, run_dir: Path) -> None:
    """Relabel the CIFAR-10 test batch with the model's predictions (clean accuracy 100%),
    so that the attacks have points to attack."""
    members = {}
    with tarfile.open(archive) as tar:
        for info in tar.getmembers():
            members[info.name] = pickle.loads(tar.extractfile(info).read(), encoding="bytes")
    batch = members["cifar-10-batches-py/test_batch"]
    images = np.asarray(batch[b"data"], dtype=np.float32).reshape(-1, 3, 32, 32) / 255
    batch[b"labels"] = _logits(run_dir, images).argmax(1).tolist()
    with tarfile.open(archive, "w:gz") as tar:
        for name, content in members.items():
            payload = pickle.dumps(content, protocol=2)
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def test_evaluate_runs_baseline_and_strong_on_an_imported_resnet20(tmp_path, capsys) -> None:
    data = tmp_path / "data"
    archive, *_ = write_cifar10_archive(data / "cifar10", n_test=8)
    run_dir = tmp_path / "resnet20"
    code, out, err = run(
        capsys,
        "import-tf",
        str(FIXTURES / "resnet20" / "model.ckpt"),
        "--arch",
        "resnet20-v2",
        "--dataset",
        "cifar10",
        "--out",
        str(run_dir),
    )
    assert code == 0, err
    assert "imported" in out
    _label_by_model(archive, run_dir)
    for preset in ("baseline", "strong"):
        result = tmp_path / f"{preset}.json"
        code, out, err = run(
            capsys,
            "evaluate",
            str(run_dir),
            "--data-dir",
            str(data),
            "--preset",
            preset,
            "--points",
            "4",
            "--out",
            str(result),
            "--no-progress",
        )
        assert code == 0, err
        record = json.loads(result.read_text())
        assert record["num_points"] == 4 and record["preset"] == preset
        assert record["clean_accuracy"] == 1.0 and record["grad_evals"] > 0
        assert record["model"] == "resnet20-v2" and "robust accuracy" in out
