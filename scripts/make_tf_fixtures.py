"""Write the TensorFlow fixtures of ``tests/importers/test_tf.py`` (needs TensorFlow).

Each original forward pass is rebuilt here in TensorFlow (tf.compat.v1 graphs and variable
scopes), from the structure and variable names of the logit-pairing code: the MNIST LeNet
and the CIFAR-10 ResNet-20 v2 of ``mnist_cifar10/models.py`` and slim's ``resnet_v2_50`` that
``tiny_imagenet/model_lib.py`` builds. Weights and batch-norm statistics are random (and
non-trivial), narrow widths keep the files small, and the checkpoints are written by
``tf.compat.v1.train.Saver`` together with the variables training left beside the model
(Adam slots, ``beta1_power``/``beta2_power``, the global step and, for Tiny ImageNet, the
moving-average shadows). ``expected.npz`` holds random NCHW inputs in [0, 1] and the TF
logits in evaluation mode (batch norm on its moving statistics).

    pip install tensorflow-cpu==2.21.0
    python scripts/make_tf_fixtures.py            # writes tests/fixtures/tf/
    python scripts/make_tf_fixtures.py --full     # also checks full-width models (not saved)
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

v1 = tf.compat.v1
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "tf"


# --- the original forward passes, in TensorFlow --------------------------------------------


def _weights(shape: list[int]) -> tf.Variable:
    return v1.get_variable("weights", shape=shape, dtype=tf.float32)


def _biases(size: int) -> tf.Variable:
    return v1.get_variable("biases", shape=[size], dtype=tf.float32)


def _batch_norm(x: tf.Tensor, scope: str, eps: float) -> tf.Tensor:
    """Batch norm in evaluation mode with the variables contrib/slim's batch_norm creates."""
    channels = x.shape[-1]
    with v1.variable_scope(scope):
        beta = v1.get_variable("beta", [channels])
        gamma = v1.get_variable("gamma", [channels])
        mean = v1.get_variable("moving_mean", [channels], trainable=False)
        var = v1.get_variable("moving_variance", [channels], trainable=False)
    return tf.nn.batch_normalization(x, mean, var, beta, gamma, eps)


def lenet(x: tf.Tensor, classes: int, width: int, hidden: int) -> tf.Tensor:
    """``LeNet`` of mnist_cifar10/models.py: conv-ReLU-pool twice, dense-ReLU, dense."""
    cin = x.shape[-1]
    for i, (a, b) in enumerate(((cin, width), (width, 2 * width)), start=1):
        with v1.variable_scope(f"conv{i}_vars"):
            w, bias = _weights([3, 3, a, b]), _biases(b)
        x = tf.nn.relu(tf.nn.conv2d(x, w, [1, 1, 1, 1], "SAME") + bias)
        x = tf.nn.max_pool2d(x, 2, 2, "VALID")
    x = tf.reshape(x, [-1, int(np.prod(x.shape[1:]))])  # NHWC flattening
    with v1.variable_scope("fc1_vars"):
        w, bias = _weights([x.shape[-1], hidden]), _biases(hidden)
    x = tf.nn.relu(tf.matmul(x, w) + bias)
    with v1.variable_scope("fc2_vars"):
        w, bias = _weights([hidden, classes]), _biases(classes)
    return tf.matmul(x, w) + bias


def resnet20_v2(x: tf.Tensor, classes: int, width: int) -> tf.Tensor:
    """``ResNet20_v2`` of mnist_cifar10/models.py (pre-activation, raw-input projections)."""
    widths = [width] * 7 + [2 * width] * 6 + [4 * width] * 6  # conv1 .. conv19 outputs
    ins = [x.shape[-1], *widths[:-1]]
    w = {}
    for n in range(1, 20):
        with v1.variable_scope(f"conv{n}_vars"):
            w[f"conv{n}"] = _weights([3, 3, ins[n - 1], widths[n - 1]])
    with v1.variable_scope("fc1_vars"):
        w_fc, b_fc = _weights([4 * width, classes]), _biases(classes)
    for k, (a, b) in enumerate(((width, width), (width, 2 * width), (2 * width, 4 * width)), 1):
        with v1.variable_scope(f"scip{k}_vars"):
            w[f"scip{k}"] = _weights([1, 1, a, b])

    def pre_act(h: tf.Tensor, n: int, stride: int) -> tf.Tensor:
        h = tf.nn.relu(_batch_norm(h, f"batch-norm-conv{n}", 1e-3))
        return tf.nn.conv2d(h, w[f"conv{n}"], [1, stride, stride, 1], "SAME")

    out = tf.nn.conv2d(x, w["conv1"], [1, 1, 1, 1], "SAME")
    for n in range(2, 20, 2):  # units: conv n, conv n+1
        stride = 2 if n in (8, 14) else 1
        h = pre_act(pre_act(out, n, stride), n + 1, 1)
        if n in (2, 8, 14):
            skip = w[f"scip{(n + 4) // 6}"]
            out = h + tf.nn.conv2d(out, skip, [1, stride, stride, 1], "SAME")
        else:
            out = h + out
    out = tf.reduce_mean(tf.nn.relu(out), axis=[1, 2])
    return tf.matmul(out, w_fc) + b_fc


def _conv(x, cout, k, stride=1, bias=False, same_explicit=False):
    """slim.conv2d (in its current variable scope); ``same_explicit``: conv2d_same."""
    w = _weights([k, k, x.shape[-1], cout])
    if same_explicit and stride > 1:
        beg = (k - 1) // 2
        x = tf.pad(x, [[0, 0], [beg, k - 1 - beg], [beg, k - 1 - beg], [0, 0]])
        y = tf.nn.conv2d(x, w, [1, stride, stride, 1], "VALID")
    else:
        y = tf.nn.conv2d(x, w, [1, stride, stride, 1], "SAME")
    return y + _biases(cout) if bias else y


def resnet_v2_50(x: tf.Tensor, classes: int, width: int) -> tf.Tensor:
    """slim's ``resnet_v2_50`` under ``resnet_arg_scope`` (BN eps 1e-5), eval mode."""
    with v1.variable_scope("resnet_v2_50"):
        with v1.variable_scope("conv1"):
            net = _conv(x, width, 7, 2, bias=True, same_explicit=True)
        net = tf.nn.max_pool2d(net, 3, 2, "SAME")
        for b, (scale, units, stride) in enumerate(((1, 3, 2), (2, 4, 2), (4, 6, 2), (8, 3, 1))):
            base, depth = width * scale, 4 * width * scale
            for u in range(1, units + 1):
                s = stride if u == units else 1
                with v1.variable_scope(f"block{b + 1}/unit_{u}/bottleneck_v2"):
                    pre = tf.nn.relu(_batch_norm(net, "preact", 1e-5))
                    if net.shape[-1] == depth:
                        short = tf.nn.max_pool2d(net, 1, s, "SAME") if s > 1 else net
                    else:
                        with v1.variable_scope("shortcut"):
                            short = _conv(pre, depth, 1, s, bias=True)
                    with v1.variable_scope("conv1"):
                        h = tf.nn.relu(_batch_norm(_conv(pre, base, 1), "BatchNorm", 1e-5))
                    with v1.variable_scope("conv2"):
                        h = _conv(h, base, 3, s, same_explicit=True)
                        h = tf.nn.relu(_batch_norm(h, "BatchNorm", 1e-5))
                    with v1.variable_scope("conv3"):
                        net = short + _conv(h, depth, 1, bias=True)
        net = tf.nn.relu(_batch_norm(net, "postnorm", 1e-5))
        net = tf.reduce_mean(net, [1, 2], keepdims=True)
        with v1.variable_scope("logits"):
            net = _conv(net, classes, 1, bias=True)
        return tf.squeeze(net, [1, 2])


# --- checkpoints ---------------------------------------------------------------------


def _assign(sess: v1.Session, values: dict) -> None:
    """Set many variables in one run (one executor instead of one per variable)."""
    feed = {var.initializer.inputs[1]: value.astype(np.float32) for var, value in values.items()}
    sess.run([var.initializer for var in values], feed)


def _random_values(rng: np.random.Generator, variables) -> dict:
    """He-scaled weights, small biases, non-trivial batch-norm parameters and statistics."""
    values = {}
    for var in variables:
        shape, last = var.shape.as_list(), var.op.name.rsplit("/", 1)[-1]
        if last == "weights":
            values[var] = rng.normal(0, np.sqrt(2.0 / int(np.prod(shape[:-1]))), shape)
        elif last == "gamma":
            values[var] = rng.uniform(0.5, 1.5, shape)
        elif last == "moving_variance":
            values[var] = rng.uniform(0.5, 2.0, shape)
        elif last in ("beta", "moving_mean", "biases"):
            values[var] = rng.normal(0, 0.2, shape)
    return values


def build_checkpoint(
    folder: Path,
    forward: Callable[[tf.Tensor], tf.Tensor],
    input_hw_c: tuple[int, int, int],
    *,
    seed: int,
    tiny_imagenet: bool = False,
    points: int = 4,
    keep: Callable[[str], bool] = lambda name: True,
    training_state: bool = True,
) -> dict[str, np.ndarray]:
    """Build, randomise and save one checkpoint; return inputs (NCHW) and TF logits.

    ``training_state``: also the optimizer's variables (and, for Tiny ImageNet, the
    moving averages), as the original training left them in its checkpoints.
    """
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as sess:
        x = v1.placeholder(tf.float32, [None, *input_hw_c])
        logits = forward(x)
        model_vars = v1.global_variables()
        loss = tf.reduce_mean(logits**2)
        if training_state and tiny_imagenet:
            step = v1.train.get_or_create_global_step()
            v1.train.AdamOptimizer(1e-3).minimize(loss, global_step=step)
            ema = v1.train.ExponentialMovingAverage(0.9999, step)
            ema.apply(model_vars)
        elif training_state:
            step = v1.get_variable(
                "global_step", [], tf.float32, v1.zeros_initializer(), trainable=False
            )
            v1.train.AdamOptimizer(1e-3, epsilon=1e-6).minimize(loss, global_step=step)
        sess.run(v1.global_variables_initializer())
        raw = _random_values(rng, model_vars)
        slots = [v for v in v1.global_variables() if v.op.name.endswith(("/Adam", "/Adam_1"))]
        slot_values = {v: rng.normal(0, 0.01, v.shape.as_list()) for v in slots}
        shadows = {}
        if tiny_imagenet and training_state:
            shadows = {ema.average(v): raw[v] + rng.normal(0, 0.05, raw[v].shape) for v in raw}
        _assign(sess, {**raw, **slot_values, **shadows})
        inputs = rng.uniform(0, 1, (points, *input_hw_c)).astype(np.float32)
        result = {"inputs": inputs.transpose(0, 3, 1, 2).copy()}
        result["logits"] = sess.run(logits, {x: inputs})
        if tiny_imagenet and training_state:  # the fine-tuned convention, the shadow weights
            result["logits_signed"] = sess.run(logits, {x: inputs * 2 - 1})
            _assign(sess, {v: shadows[ema.average(v)] for v in raw})
            result["logits_ema"] = sess.run(logits, {x: inputs})
            _assign(sess, raw)
        saved = [v for v in v1.global_variables() if keep(v.op.name)]
        folder.mkdir(parents=True, exist_ok=True)
        v1.train.Saver(saved).save(sess, str(folder / "model.ckpt"), write_meta_graph=False)
    (folder / "checkpoint").unlink(missing_ok=True)
    return result


def write_fixtures(root: Path) -> None:
    """The committed fixtures: three narrow models and three broken LeNet checkpoints."""
    mnist, cifar, tiny = (28, 28, 1), (32, 32, 3), (64, 64, 3)
    lenet_fn = lambda x: lenet(x, 10, width=4, hidden=32)  # noqa: E731
    cases = {
        "lenet": (lenet_fn, mnist, False),
        "resnet20": (lambda x: resnet20_v2(x, 10, width=4), cifar, False),
        "resnet50": (lambda x: resnet_v2_50(x, 200, width=2), tiny, True),
    }
    for seed, (name, (fn, shape, tiny_imagenet)) in enumerate(cases.items()):
        arrays = build_checkpoint(root / name, fn, shape, seed=seed, tiny_imagenet=tiny_imagenet)
        np.savez_compressed(root / name / "expected.npz", **arrays)

    def lenet_with_conv3(x: tf.Tensor) -> tf.Tensor:
        with v1.variable_scope("conv3_vars"):
            _weights([3, 3, 8, 8])
        return lenet_fn(x)

    broken = {
        "missing": (lenet_fn, lambda n: n != "fc2_vars/biases"),
        "extra": (lenet_with_conv3, lambda n: True),
        "shape": (lambda x: lenet(x, 11, width=4, hidden=32), lambda n: True),
    }
    for seed, (name, (fn, keep)) in enumerate(broken.items(), start=10):
        model_only = lambda n, keep=keep: keep(n) and "Adam" not in n and "power" not in n  # noqa: E731
        build_checkpoint(root / "broken" / name, fn, mnist, seed=seed, points=1, keep=model_only)


def check_full_width() -> None:
    """Full-width ResNet-20 v2 (64 filters) and ResNet-50 v2: TF vs lpbench (not saved)."""
    import torch

    from lpbench.importers import convert_tf_checkpoint

    cases = [
        ("resnet20-v2", "cifar10", lambda x: resnet20_v2(x, 10, width=64), (32, 32, 3)),
        ("resnet50-v2", "tiny-imagenet", lambda x: resnet_v2_50(x, 200, 64), (64, 64, 3)),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for arch, dataset, fn, shape in cases:
            folder = Path(tmp) / arch
            arrays = build_checkpoint(folder, fn, shape, seed=99, points=8, training_state=False)
            model, _ = convert_tf_checkpoint(folder / "model.ckpt", arch=arch, dataset=dataset)
            with torch.no_grad():
                ours = model(torch.from_numpy(arrays["inputs"])).numpy()
            diff = np.abs(ours - arrays["logits"]).max()
            scale = np.abs(arrays["logits"]).max()
            print(
                f"{arch} full width: max |diff| {diff:.3g}, max |logit| {scale:.3g}, "
                f"ratio {diff / scale:.3g}"
            )
            shutil.rmtree(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=FIXTURES)
    parser.add_argument("--full", action="store_true", help="also check full-width models")
    args = parser.parse_args()
    v1.disable_eager_execution()
    if args.out.exists():
        shutil.rmtree(args.out)
    write_fixtures(args.out)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out} ({total / 1e6:.2f} MB)")
    if args.full:
        check_full_width()


if __name__ == "__main__":
    main()
