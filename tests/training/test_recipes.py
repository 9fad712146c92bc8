"""Every paper table row has a recipe; each trains, checkpoints, evaluates and resumes.

The runs use the real on-disk formats (IDX, CIFAR-10 pickles in a tar.gz, Tiny ImageNet
JPEGs converted to the cache), the recipes' architectures at a small width, one epoch of
two steps and 2 PGD iterations; the kill falls after the mid-epoch state of step 1.
"""

from __future__ import annotations

import pytest
import torch

from lpbench import training
from lpbench.attacks import PGD
from lpbench.data import prepare_tiny_imagenet
from lpbench.evaluation import NamedAttack, evaluate
from lpbench.training import (
    PAPER_ROWS,
    RECIPES,
    describe_recipes,
    get_recipe,
    load_checkpoint,
    recipe_config,
    short_objective,
    train,
)
from lpbench.training import trainer as trainer_module
from tests.support import write_cifar10_archive, write_mnist_folder, write_tiny_imagenet_tree

ALL_ROWS = [name for rows in PAPER_ROWS.values() for name in rows.values()]


def test_every_paper_row_has_a_recipe() -> None:
    assert [len(rows) for rows in PAPER_ROWS.values()] == [8, 8, 9]
    assert len(set(ALL_ROWS)) == 25 and set(ALL_ROWS) <= set(RECIPES)
    text = describe_recipes()
    assert all(name in text for name in RECIPES)
    assert "noise std 16/255" in text and "0.5" in text  # the chosen values, with reasons
    tiny = RECIPES["tiny-imagenet/100at-ll-alp-ll"].config
    assert (
        tiny.adv_target == "ll"
        and tiny.adv_model_mode == "eval"
        and tiny.lr_milestones
        == (
            80,
            90,
        )
    )
    assert tiny.objective.label_smoothing == 0.1 and tiny.objective.decay_all
    assert tiny.ema_decay == 0.9999 and tiny.objective.at == 1 and tiny.objective.ce == 0
    assert RECIPES["tiny-imagenet/lsq"].config.objective.lsq == 0.05
    assert not RECIPES["tiny-imagenet/lsq"].config.objective.noise_clip
    cifar = RECIPES["cifar10/50at"].config
    assert cifar.model == "resnet20-v2" and cifar.adv_model_mode == "train"
    assert cifar.adv_step == pytest.approx(2 / 255) and cifar.adv_iters == 10
    assert RECIPES["tiny-imagenet/50at-rnd"].config.adv_target == "random"
    # the short names keep working, on MNIST and Fashion-MNIST only
    assert get_recipe("at50", "fashion-mnist").config.dataset == "fashion-mnist"
    assert get_recipe("at50").config.objective == RECIPES["mnist/50at"].config.objective
    with pytest.raises(ValueError, match="cifar10/"):
        get_recipe("clp", "cifar10")
    with pytest.raises(ValueError, match="trains on cifar10"):
        get_recipe("cifar10/clp", "mnist")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_mnist_folder(root / "mnist", n_train=64, n_test=16)
    write_cifar10_archive(root / "cifar10", per_batch=4, n_test=8)
    tree, _, _ = write_tiny_imagenet_tree(root / "src", per_class=4, n_val=8)
    prepare_tiny_imagenet(root / "tiny-imagenet", tree, progress=False)
    return root


@pytest.fixture(scope="module")
def pretrained(data_root, tmp_path_factory):
    """A small Tiny ImageNet ResNet-50 checkpoint to fine-tune from."""
    out = tmp_path_factory.mktemp("pretrained")
    config = recipe_config(
        "tiny-imagenet/plain", epochs=1, batch_size=8, model_options={"width": 4}
    )
    train(config, out, data_dir=data_root, show_progress=False)
    return out


def _config(name: str, pretrained):
    recipe = get_recipe(name)
    options = dict(recipe.config.model_options)
    if recipe.config.model != "lenet":
        options["width"] = 4
    return recipe_config(
        name,
        epochs=1,
        batch_size=8,
        train_points=16,
        adv_iters=2,
        eval_adv_points=4,
        checkpoint_every=1,
        model_options=options,
        init_from=str(pretrained) if recipe.needs_init else None,
    )


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ALL_ROWS)
def test_recipe_trains_evaluates_and_resumes(name, data_root, pretrained, tmp_path, monkeypatch):
    config = _config(name, pretrained)
    reference, history = train(config, tmp_path / "ref", data_dir=data_root, show_progress=False)
    seen = history[0]["images"]
    assert [r["epoch"] for r in history] == [1] and seen in (12, 16)
    assert "loss_total" in history[-1] and "adv_accuracy_baseline" in history[-1]

    real = trainer_module.objective_terms
    calls = {"n": 0}

    def killed(*args, **kwargs):  # second step: after the state saved at step 1
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "objective_terms", killed)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "run", data_dir=data_root, show_progress=False)
    monkeypatch.setattr(trainer_module, "objective_terms", real)
    resumed, history = train(
        config, tmp_path / "run", data_dir=data_root, resume=True, show_progress=False
    )
    assert [r["epoch"] for r in history] == [1] and history[0]["images"] == seen
    ref, got = _state(reference), _state(resumed)
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)

    model, meta = load_checkpoint(tmp_path / "run")
    assert meta["preset"] == name and meta["model"] == config.model
    assert all(torch.equal(ref[k], v) for k, v in _state(model).items())
    if config.ema_decay:
        ema_ref, _ = load_checkpoint(tmp_path / "ref" / "model_ema.safetensors")
        ema_run, _ = load_checkpoint(tmp_path / "run" / "model_ema.safetensors")
        assert all(torch.equal(v, _state(ema_run)[k]) for k, v in _state(ema_ref).items())
    shape = tuple(meta["input_shape"])
    x, y = torch.rand(4, *shape), torch.randint(0, 3, (4,))
    result = evaluate(model, x, y, [NamedAttack("pgd", PGD(0.03, 0.01, 2))], show_progress=False)
    assert result.num_points == 4 and 0 <= result.robust_accuracy <= result.clean_accuracy


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("SEED_ROWS", "PAPER_ROWS"),
        ("TRAIN_PRESETS", "SHORT_OBJECTIVES"),
        ("get_train_preset", "short_objective"),
    ],
)
def test_old_names_warn_and_give_the_new_ones(old: str, new: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"use lpbench.training.{new}"):
        value = getattr(training, old)
    assert value is getattr(training, new)
    assert short_objective("at50") == RECIPES["mnist/50at"].config.objective
