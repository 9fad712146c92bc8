"""``lpbench check``: cheap probes for gradient masking and failed attacks, with evidence.

Every probe runs on the points the model classifies correctly and either passes or
raises a warning that carries its numbers. The probes follow the sanity checks of
Carlini et al. (2019, "On Evaluating Adversarial Robustness") and the indicators of
attack failure of Pintor et al. (2022):

- ``gap``: the data set's baseline leaves far more points robust than stronger white-box
  attacks (APGD-CE, APGD-T): the baseline is overestimating robustness;
- ``black-box``: Square (gradient-free) breaks points no white-box attack broke;
- ``relu-masking``: APGD on the DLR loss through a smoothed ReLU backward pass (the
  forward pass exact; :class:`~lpbench.attacks.smooth.SmoothReLUBackward`) breaks points
  the plain white-box attacks did not: ReLUs the model keeps off hide the way (skipped
  for a model that computes no ReLU);
- ``restarts``: PGD's verdict on a point changes from one random restart to another;
- ``gradients`` (unavailable gradients): input gradients that are zero or not finite;
- ``logits``: logits so large that float32 softmax saturates (cross-entropy 0), or so
  small that the classes are barely separated;
- ``unbounded`` (unconstrained attack failure): at eps = 1 an attack must break every point;
- ``single-step``: FGSM breaks points the iterative attacks did not;
- ``eps-sweep``: robust accuracy must not rise as eps grows (drawn as a curve);
- ``silent-success``: an iterate was adversarial but the last one is not;
- ``incomplete``: the attack loss is still rising at the last iterations;
- ``no-progress`` (non-converging loss): the attack loss never rose above its start on
  points that stayed robust;
- ``loss-surface``: the cross-entropy sampled along the segment from the point to the
  eps-ball's boundary (gradient-sign and keyed random sign directions) is rough: its total
  variation is many times its net change (a smooth monotone curve gives 1);
- ``transfer`` (transfer failure): examples crafted on a surrogate model break points the
  white-box attacks on the model left robust (skipped without a surrogate);
- ``convergence``: APGD-CE with twice the iterations, or PGD with twice the restarts,
  lowers robust accuracy: the probe's own attacks had not converged;
- ``randomness``: a randomised model (two identical calls differ) is attacked with
  expectation over transformation (EOT) in every gradient attack, and each final example
  is evaluated several times; a point counts as broken only when misclassified in every
  evaluation. Warns when verdicts flip between evaluations on many points.

A clean report is no proof of robustness; a warning is a reason to distrust a number.
The package: :mod:`.findings` (report types), :mod:`.probes`, :mod:`.check` (the entry
point); the eps sweep is drawn by :func:`lpbench.diagnostics.plot_sweep`.
"""

from lpbench.evaluation.check.check import Settings, check
from lpbench.evaluation.check.findings import CLEAN, SUSPECT, CheckReport, Finding, NothingToCheck
from lpbench.evaluation.check.probe import Probe
from lpbench.evaluation.check.probes import FLIP_LIMIT, SWEEP, run_probes
from lpbench.evaluation.check.surface import ROUGHNESS_LIMIT, SURFACE_SAMPLES

__all__ = [
    "CLEAN",
    "FLIP_LIMIT",
    "ROUGHNESS_LIMIT",
    "SURFACE_SAMPLES",
    "SUSPECT",
    "SWEEP",
    "CheckReport",
    "Finding",
    "NothingToCheck",
    "Probe",
    "Settings",
    "check",
    "run_probes",
]
