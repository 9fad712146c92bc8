"""The one interface every attack implements, what an attack returns and what it cost."""

from __future__ import annotations

import functools
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import KW_ONLY, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch
from torch import nn

from lpbench.attacks.keyed import derive_key
from lpbench.runtime import progress_bar

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**_kwargs: Any) -> Any:
        """Type checkers only: at run time the decorator leaves the function unchanged."""
        return lambda function: function


#: Restart status codes in :class:`RestartRecords`.
SKIPPED, COMPLETE, GAVE_UP = 0, 1, 2


@dataclass
class Cost:
    """What an attack spent, in rows (one input through the model counts once).

    ``gradients``: input-gradient evaluations (forward + backward). ``forwards``: forward
    passes, those with a gradient included. ``queries``: forward passes whose output a
    score-based (black-box) attack used; 0 for white-box attacks. ``shared_gradients`` and
    ``shared_forwards``: the part of ``gradients`` and ``forwards`` spent once for all
    points rather than on the points attacked (a universal perturbation's source images).
    """

    gradients: int = 0
    forwards: int = 0
    queries: int = 0
    shared_gradients: int = 0
    shared_forwards: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def to_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}


@dataclass
class RestartRecords:
    """Per point and restart: final loss, success and whether the restart counts as run.

    ``status`` is ``COMPLETE`` when the restart ran to its end (or until it broke the
    point itself), ``GAVE_UP`` when it stopped on the point early because the point made
    too little progress (Square's ``give_up``), and ``SKIPPED`` when it was not run because
    an earlier restart had already broken the point (early stop). Skipped entries hold
    NaN / False.
    """

    loss: torch.Tensor
    success: torch.Tensor
    status: torch.Tensor

    @property
    def ran(self) -> torch.Tensor:
        """Per point and restart: whether the restart was run (to its end or given up)."""
        return self.status != SKIPPED


@dataclass
class AttackResult:
    """Outcome of attacking N points.

    ``x_adv`` holds, per point, the adversarial example found (the iterate with the
    largest margin of the restart that counts) or, when none was found, the example with
    the highest loss. ``loss`` and ``margin`` are the attack loss and the margin
    (best other logit minus true logit; target minus best other when targeted) at
    ``x_adv``; a positive margin means adversarial. ``success_at[k]`` tells, per point,
    whether it was broken within its first k iterations (step-size x iteration grids),
    and ``gradients_within[k]`` how many gradients the attack spent in those iterations.
    ``spent`` (attacks that count it per point; else None): the gradients + queries spent
    on each point, which sum to the cost's gradients + queries beyond the shared ones.
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    loss: torch.Tensor
    margin: torch.Tensor
    cost: Cost
    restarts: RestartRecords | None = None
    success_at: dict[int, torch.Tensor] = field(default_factory=dict)
    gradients_within: dict[int, int] = field(default_factory=dict)
    spent: torch.Tensor | None = None

    @staticmethod
    def concat(parts: list[AttackResult]) -> AttackResult:
        """Results of consecutive chunks of points joined into one."""
        first = parts[0]
        restarts = None
        if first.restarts is not None:
            restarts = RestartRecords(
                *(
                    torch.cat([getattr(p.restarts, f.name) for p in parts])
                    for f in fields(RestartRecords)
                )
            )
        cost = Cost()
        for part in parts:
            cost = cost + part.cost
        return AttackResult(
            x_adv=torch.cat([p.x_adv for p in parts]),
            success=torch.cat([p.success for p in parts]),
            loss=torch.cat([p.loss for p in parts]),
            margin=torch.cat([p.margin for p in parts]),
            cost=cost,
            restarts=restarts,
            success_at={k: torch.cat([p.success_at[k] for p in parts]) for k in first.success_at},
            gradients_within={
                k: sum(p.gradients_within[k] for p in parts) for k in first.gradients_within
            },
            spent=_joined([p.spent for p in parts]),
        )


def _joined(parts: list[torch.Tensor | None]) -> torch.Tensor | None:
    """The parts concatenated, or None when any is None."""
    present = [p for p in parts if p is not None]
    return torch.cat(present) if len(present) == len(parts) else None


def checked_give_up(pairs: Sequence[tuple[int, float]]) -> tuple[tuple[int, float], ...]:
    """``give_up`` checkpoints as sorted ``(queries or iterations, share)`` pairs, rejecting
    bad ones."""
    checked = []
    for queries, share in pairs:
        if int(queries) != queries or queries < 1:
            raise ValueError(f"give_up checkpoints must be positive integers, got {queries}")
        if not 0 <= share <= 1:
            raise ValueError(f"give_up shares must be in [0, 1], got {share}")
        checked.append((int(queries), float(share)))
    if len({q for q, _ in checked}) != len(checked):
        raise ValueError(f"give_up has repeated checkpoints: {pairs}")
    return tuple(sorted(checked))


def count_at_least(name: str, value: int, minimum: int) -> int:
    """``value`` as an int; ValueError naming ``name`` when it is below ``minimum``."""
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


@contextmanager
def attack_mode(model: nn.Module, *, eval_mode: bool) -> Iterator[None]:
    """Input gradients only (weights frozen) and, when asked, eval mode; both restored."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    for p, _ in flags:
        p.requires_grad_(False)
    if eval_mode:
        model.eval()
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def setting(*, config: bool = True, **kwargs: Any) -> Any:
    """A field of an attack's settings; ``config=False`` keeps it out of
    :meth:`Attack.config`: options results files never recorded (``max_batch``,
    ``model_mode``, PGD's ``record_at``) and settings an attack records in a form of its
    own (Universal's ``sources``, as their count and digest)."""
    return field(metadata={"config": config}, **kwargs)


A = TypeVar("A", bound="Attack")


@dataclass_transform(eq_default=False, field_specifiers=(field, setting))
def attack_settings(cls: type[A]) -> type[A]:
    """``cls`` as a dataclass of its settings (compared by identity, lpbench's repr) whose
    constructor also takes the old keywords in ``cls.renamed``, with a DeprecationWarning."""
    cls = dataclass(eq=False, repr=False)(cls)
    generated = cls.__init__

    @functools.wraps(generated)
    def __init__(self: Attack, *args: Any, **kwargs: Any) -> None:
        generated(self, *args, **_new_keywords(type(self), kwargs))

    cls.__init__ = __init__  # type: ignore[method-assign]
    return cls


def _new_keywords(cls: type[Attack], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with each old keyword of ``cls.renamed`` under its new name (warned)."""
    for old, new in cls.renamed.items():
        if old not in kwargs:
            continue
        if new in kwargs:
            raise TypeError(f"{cls.__name__} got both {old}= (deprecated) and {new}=")
        warnings.warn(
            f"{cls.__name__}: {old}= is deprecated, use {new}=", DeprecationWarning, stacklevel=3
        )
        kwargs[new] = kwargs.pop(old)
    return kwargs


def _jsonable(value: Any) -> Any:
    """``value`` with tuples turned into lists, as JSON writes them."""
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


@attack_settings
class Attack(ABC):
    """An L-infinity attack: ``attack(model, x, y, index=..., target=...) -> AttackResult``.

    The model maps inputs in [0, 1] to logits. The attack runs it in eval mode (BatchNorm
    uses its running statistics, dropout is off) and restores the caller's mode afterwards;
    ``model_mode="caller"`` keeps the caller's mode instead (adversarial training recipes
    that craft examples with BatchNorm in training mode). Weights are never changed.

    Every random draw is keyed by (``seed``, ``stream``, data-set index, restart), so a
    point's attack is the same in any batch, chunk, shard or process; ``index`` gives the
    data-set indices of the points (default ``0..N-1``). The attack splits the work into
    forward passes of at most ``max_batch`` rows and, on a CUDA out-of-memory error,
    halves it and retries (results do not depend on it). Attacks with ``takes_start``
    accept ``x_init``, a starting point per input (its ``perturb`` then gets ``x_init``);
    attacks with ``takes_limit`` accept ``limit``, the most gradients + queries to spend on
    each input (its ``perturb`` then gets ``limit``; it may exceed the attack's own cap).

    An attack's settings are the fields of a dataclass (subclasses are decorated with
    :func:`attack_settings`): :meth:`config` lists them, :meth:`replace` builds a changed
    copy through the constructor's checks (in ``__post_init__``).
    """

    name: ClassVar[str] = "attack"
    norm: ClassVar[str] = "linf"
    #: Whether the attack can start from given points (``x_init``).
    takes_start: ClassVar[bool] = False
    #: Whether the attack takes a per-point spending limit (``limit``).
    takes_limit: ClassVar[bool] = False
    #: Old keyword (and attribute) -> its new name; the old one is deprecated.
    renamed: ClassVar[dict[str, str]] = {}

    eps: float
    _: KW_ONLY
    seed: int = 0
    stream: str | None = None
    max_batch: int = setting(default=10_000, config=False)
    model_mode: str = setting(default="eval", config=False)

    def __post_init__(self) -> None:
        if not 0 <= self.eps <= 1:
            raise ValueError(f"eps must be in [0, 1] (inputs are in [0, 1]), got {self.eps}")
        if self.model_mode not in ("eval", "caller"):
            raise ValueError(f"model_mode must be 'eval' or 'caller', got {self.model_mode!r}")
        self.eps = float(self.eps)
        self.seed = int(self.seed)
        self.stream = self.stream or self.name
        self.max_batch = count_at_least("max_batch", self.max_batch, 1)

    def __getattr__(self, old: str) -> Any:
        """A deprecated setting's name reads its new one, with a DeprecationWarning."""
        new = type(self).renamed.get(old)
        if new is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {old!r}")
        warnings.warn(
            f"{type(self).__name__}.{old} is deprecated, use .{new}", DeprecationWarning, 2
        )
        return getattr(self, new)

    def replace(self: A, **changes: Any) -> A:
        """A new attack with ``changes`` to its settings, built and checked by the
        constructor; TypeError naming any name that is not a setting."""
        settable = {f.name for f in fields(self) if f.init}
        unknown = sorted(set(changes) - settable)
        if unknown:
            raise TypeError(
                f"{type(self).__name__} has no setting {', '.join(unknown)}; "
                f"settings: {', '.join(sorted(settable))}"
            )
        return type(self)(**{name: getattr(self, name) for name in settable} | changes)

    @property
    def key(self) -> int:
        """The 32-bit key every random draw of this attack starts from."""
        return derive_key(self.seed, self.stream)

    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        index: torch.Tensor | None = None,
        target: torch.Tensor | None = None,
        x_init: torch.Tensor | None = None,
        limit: torch.Tensor | None = None,
        progress_desc: str | None = None,
    ) -> AttackResult:
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{x.shape[0]} inputs but {y.shape[0]} labels")
        if target is not None and target.shape != y.shape:
            raise ValueError("target must have one class per input")
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise ValueError("inputs must lie in [0, 1] (put any normalisation inside the model)")
        n = x.shape[0]
        index = torch.arange(n) if index is None else torch.as_tensor(index).reshape(-1)
        if index.shape[0] != n:
            raise ValueError(f"{n} inputs but {index.shape[0]} data-set indices")
        index = index.to(device=x.device, dtype=torch.int64)
        if x_init is not None:
            x_init = self._checked_start(x, x_init)
        extra: dict[str, torch.Tensor] = {} if x_init is None else {"x_init": x_init}
        if limit is not None:
            extra["limit"] = self._checked_limit(x, limit)
        with attack_mode(model, eval_mode=self.model_mode == "eval"):
            return self._run_chunks(model, x, y, index, target, extra, progress_desc)

    def _checked_limit(self, x: torch.Tensor, limit: torch.Tensor) -> torch.Tensor:
        """``limit`` as integers on ``x``'s device, rejected unless this attack takes
        per-point limits and there is one non-negative limit per input."""
        if not self.takes_limit:
            raise ValueError(f"{type(self).__name__} takes no per-point limits (limit)")
        limit = torch.as_tensor(limit).reshape(-1)
        if limit.shape[0] != x.shape[0] or (limit.numel() and limit.min() < 0):
            raise ValueError("limit needs one non-negative count per input")
        return limit.to(device=x.device, dtype=torch.int64)

    def _checked_start(self, x: torch.Tensor, x_init: torch.Tensor) -> torch.Tensor:
        """``x_init`` on ``x``'s device, rejected unless this attack takes starting points
        and each lies in its point's eps-ball and in [0, 1] (up to rounding)."""
        if not self.takes_start:
            raise ValueError(f"{type(self).__name__} does not take starting points (x_init)")
        if x_init.shape != x.shape:
            raise ValueError(f"x_init has shape {tuple(x_init.shape)}, the inputs {tuple(x.shape)}")
        x_init = x_init.to(device=x.device, dtype=x.dtype)
        slack = 1e-6
        if x_init.numel() and (
            (x_init - x).abs().max() > self.eps + slack
            or x_init.min() < -slack
            or x_init.max() > 1 + slack
        ):
            raise ValueError("x_init must lie in each input's eps-ball and in [0, 1]")
        return x_init

    def _run_chunks(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        index: torch.Tensor,
        target: torch.Tensor | None,
        extra: dict[str, torch.Tensor],
        desc: str | None,
    ) -> AttackResult:
        if x.shape[0] == 0:
            return self.perturb(model, x, y, index, target)
        parts: list[AttackResult] = []
        done = 0
        bar = progress_bar(
            desc=desc or self.name, total=x.shape[0], enabled=desc is not None, unit="pt"
        )
        while done < x.shape[0]:
            size = max(1, self.max_batch // self.rows_per_point(x.shape[0] - done))
            part = slice(done, min(done + size, x.shape[0]))
            t = None if target is None else target[part]
            chunk = {name: value[part] for name, value in extra.items()}
            try:
                parts.append(self.perturb(model, x[part], y[part], index[part], t, **chunk))
            except torch.OutOfMemoryError:
                if self.max_batch == 1:
                    raise
                self.max_batch //= 2
                warnings.warn(
                    f"{self.name}: out of memory; retrying with {self.max_batch} rows per "
                    "forward pass (results do not depend on it)",
                    stacklevel=2,
                )
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            bar.update(part.stop - done)
            done = part.stop
        bar.close()
        return AttackResult.concat(parts)

    def rows_per_point(self, points: int) -> int:
        """Rows one point takes in a forward pass when ``points`` points are to be attacked
        (restarts or targets batched together)."""
        return 1

    @abstractmethod
    def perturb(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        index: torch.Tensor,
        target: torch.Tensor | None,
    ) -> AttackResult:
        """Attack one chunk of points (already on the model's device)."""

    def config(self) -> dict[str, Any]:
        """The attack's settings, JSON-serialisable, enough to re-run it: the attack's name,
        its norm and every field but those marked ``setting(config=False)``, tuples as lists.
        Subclasses override it only to record a setting in a resolved form (e.g. a default
        that depends on another setting)."""
        shared = self.base_config()
        return shared | {
            f.name: _jsonable(getattr(self, f.name))
            for f in fields(self)
            if f.metadata.get("config", True) and f.name not in shared
        }

    def base_config(self) -> dict[str, Any]:
        """Settings every attack shares."""
        return {
            "attack": self.name,
            "norm": self.norm,
            "eps": self.eps,
            "seed": self.seed,
            "stream": self.stream,
        }

    def max_spend_per_point(self) -> int:
        """The most gradients + queries this attack can spend on one point (its per-point
        cap, which ``auto``'s budget is built from)."""
        raise ValueError(f"no per-point cost bound known for {type(self).__name__}")

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in self.config().items())
        return f"{type(self).__name__}({settings})"
