"""One row per evaluated model, rendered like the seed's tables (Markdown or terminal)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lpbench.machine import describe_machine

COLUMNS = ("Model", "Accuracy", "Adversarial accuracy, baseline", "Adversarial accuracy, strongest")
#: The baseline column's text for an evaluation that did not run the paper's baseline.
NOT_RUN = "not run"
COST_COLUMNS = (
    "Model",
    "Points",
    "eps",
    "Gradient evaluations, baseline",
    "Wall time, baseline",
    "Gradient evaluations, strongest",
    "Wall time, strongest",
)


def describe_attack(summary: dict[str, Any]) -> str:
    """One line with an attack's label and settings, from its results summary."""
    config = summary.get("config", {})
    if config.get("attack") == "pgd":
        restarts = int(config["restarts"])
        mode = config.get("target_mode", config.get("targeted"))  # targeted: older results
        target = f", towards the {mode} class" if mode else ""
        text = (
            f"PGD on {config['loss']} loss{target}, {config['iters']} iterations, "
            f"step {config['step']:.4g}, {restarts} restart{'s' if restarts > 1 else ''}, "
            f"{config.get('score', 'any')}-iterate scoring"
        )
    else:
        text = ", ".join(f"{k} {v}" for k, v in config.items())
    return f"{summary['label']}: {text}"


def _model_name(results: dict[str, Any]) -> str:
    """The results' name, else the training preset, else the checkpoint's folder or file."""
    for key in ("name", "train_preset"):
        if results.get(key):
            return str(results[key])
    if results.get("checkpoint"):
        path = Path(results["checkpoint"])
        return path.parent.name if path.suffix in (".safetensors", ".json") else path.name
    return "model"


@dataclass
class ResultRow:
    """A model's clean, baseline and strongest accuracy, with each column's cost.

    The baseline column is the attack labelled "baseline" (the paper's), None when the
    evaluation did not run it (``auto``, ``aa-standard``, a custom PGD: the tables then say
    "not run", never another attack's accuracy); the strongest column is the worst case
    per point over every attack of the evaluation, and is None when no attack beyond the
    baseline ran. Its cost is the whole evaluation's. ``machine`` labels the machine
    that ran it (:func:`lpbench.machine.describe_machine`; "unknown" if not recorded).
    ``randomised``: the EOT draws and re-checks of a randomised model's evaluation.
    """

    name: str
    clean_accuracy: float
    baseline_accuracy: float | None
    strongest_accuracy: float | None
    num_points: int
    eps: float | None
    dataset: str | None = None
    baseline_grad_evals: int | None = None
    baseline_wall_time_s: float | None = None
    strong_grad_evals: int | None = None
    strong_wall_time_s: float | None = None
    baseline_attack: str | None = None
    strong_attacks: list[str] = field(default_factory=list)
    baseline_label: str | None = None
    machine: str = "unknown"
    randomised: dict[str, Any] | None = None

    @classmethod
    def from_results(cls, results: dict[str, Any], name: str | None = None) -> ResultRow:
        """The row of an evaluation's JSON form (``EvaluationResult.to_dict()``)."""
        attacks = results.get("attacks", [])
        baseline = next((a for a in attacks if a["label"] == "baseline"), None)
        strong = any(a["label"] != "baseline" for a in attacks)
        return cls(
            name=name or _model_name(results),
            clean_accuracy=float(results["clean_accuracy"]),
            baseline_accuracy=None
            if baseline is None
            else float(baseline["robust_accuracy_after"]),
            strongest_accuracy=float(results["robust_accuracy"]) if strong else None,
            num_points=int(results["num_points"]),
            eps=results.get("eps"),
            dataset=results.get("dataset"),
            baseline_grad_evals=None if baseline is None else int(baseline["grad_evals"]),
            baseline_wall_time_s=None if baseline is None else float(baseline["wall_time_s"]),
            strong_grad_evals=int(results["grad_evals"]) if strong else None,
            strong_wall_time_s=float(results["wall_time_s"]) if strong else None,
            baseline_attack=None if baseline is None else describe_attack(baseline),
            strong_attacks=[describe_attack(a) for a in attacks] if strong else [],
            baseline_label=None if baseline is None else str(baseline["label"]),
            machine=describe_machine((results.get("manifest") or {}).get("machine")),
            randomised=results.get("randomised"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)


def machine_warnings(items: Sequence[ResultRow | dict[str, Any]]) -> list[str]:
    """A warning naming which results came from which machine, when they came from several.

    Items are rows or results dicts. Machines differ when the CPU model, torch's CPU
    capability or the GPU differ; results that do not record theirs count as "unknown".
    """
    rows = [item if isinstance(item, ResultRow) else ResultRow.from_results(item) for item in items]
    groups: dict[str, list[str]] = {}
    for row in rows:
        groups.setdefault(row.machine, []).append(row.name)
    if len(groups) < 2:
        return []
    where = "; ".join(f"{', '.join(names)} on {machine}" for machine, names in groups.items())
    return [
        "These results come from different machines (CPU, CPU capability or GPU), so "
        f"verdicts near the decision boundary may differ by rounding alone: {where}."
    ]


def format_percent(value: float | None) -> str:
    """``12.3%``, or ``n/a``."""
    return "n/a" if value is None else f"{100 * value:.1f}%"


def baseline_cell(row: ResultRow) -> str:
    """The baseline column's text: its accuracy, or ``not run`` when the evaluation did not
    run the paper's baseline (a row without attacks: ``n/a``)."""
    if row.baseline_accuracy is None and row.strong_attacks:
        return NOT_RUN
    return format_percent(row.baseline_accuracy)


def format_count(value: int | None) -> str:
    """``1,234``, or ``n/a``."""
    return "n/a" if value is None else f"{value:,}"


def format_seconds(value: float | None) -> str:
    """``1,234.5 s``, or ``n/a``."""
    return "n/a" if value is None else f"{value:,.1f} s"


def _accuracy_cells(rows: Sequence[ResultRow], *, bold: bool) -> list[list[str]]:
    """Model and the three accuracies per row; with ``bold``, the best of each column."""
    columns: list[list[float | None]] = [
        [r.clean_accuracy for r in rows],
        [r.baseline_accuracy for r in rows],
        [r.strongest_accuracy for r in rows],
    ]
    cells = [[r.name] for r in rows]
    for column, values in enumerate(columns):
        known = [v for v in values if v is not None]
        best = max(known) if bold and len(rows) > 1 and known else None
        for row, result, value in zip(cells, rows, values, strict=True):
            text = baseline_cell(result) if column == 1 else format_percent(value)
            row.append(f"**{text}**" if best is not None and value == best else text)
    return cells


def _markdown_table(header: Sequence[str], cells: Sequence[Sequence[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["-----"] + ["-----:"] * (len(header) - 1)) + " |",
    ]
    return lines + ["| " + " | ".join(row) + " |" for row in cells]


def attack_setups(rows: Sequence[ResultRow]) -> dict[tuple[str | None, tuple[str, ...]], list[str]]:
    """The models (names) per distinct (baseline attack, strongest column's attacks)."""
    groups: dict[tuple[str | None, tuple[str, ...]], list[str]] = {}
    for row in rows:
        groups.setdefault((row.baseline_attack, tuple(row.strong_attacks)), []).append(row.name)
    return groups


def _attack_lines(rows: Sequence[ResultRow]) -> list[str]:
    """One bullet per distinct attack setup, naming the models it was run on."""
    lines = []
    for (baseline, strong), names in attack_setups(rows).items():
        lines.append(f"- {', '.join(names)}: baseline column: {baseline or NOT_RUN}")
        if strong:
            lines.append(
                "  strongest column (worst case per point over all of): " + "; ".join(strong)
            )
    return lines


def randomised_notes(rows: Sequence[ResultRow]) -> list[str]:
    """One sentence per randomised model: how its attacks and verdicts treated the noise."""
    notes = []
    for row in rows:
        if row.randomised is not None:
            draws = "/".join(str(d) for d in row.randomised["eot_iter"])
            notes.append(
                f"{row.name} is randomised: each gradient averaged over {draws} draws (EOT); "
                f"an example counts only if all {row.randomised['rechecks']} re-check draws "
                "misclassify it."
            )
    return notes


def render_markdown(rows: Sequence[ResultRow], title: str = "Results") -> str:
    """The seed's table (best value per column in bold), then cost and attack settings."""
    cost = [
        [
            r.name,
            str(r.num_points),
            "n/a" if r.eps is None else f"{r.eps:g}",
            format_count(r.baseline_grad_evals),
            format_seconds(r.baseline_wall_time_s),
            format_count(r.strong_grad_evals),
            format_seconds(r.strong_wall_time_s),
        ]
        for r in rows
    ]
    lines = [
        f"# {title}",
        "",
        *_markdown_table(COLUMNS, _accuracy_cells(rows, bold=True)),
        "",
        "A point counts as robust only if it is classified correctly under every restart "
        "of every attack of its column (worst case per point).",
        "",
        *[f"{note}\n" for note in randomised_notes(rows)],
        *[f"> **Warning:** {warning}\n" for warning in machine_warnings(rows)],
        "## Cost",
        "",
        *_markdown_table(COST_COLUMNS, cost),
        "",
        "## Attacks",
        "",
        *_attack_lines(rows),
    ]
    return "\n".join(lines) + "\n"


def render_text(rows: Sequence[ResultRow]) -> str:
    """The same table, aligned for a terminal, with the whole evaluation's cost."""
    header = [
        "Model",
        "Accuracy",
        "Adv. acc. baseline",
        "Adv. acc. strongest",
        "Grad evals",
        "Wall time",
    ]
    cells = [
        [
            *acc,
            format_count(
                r.strong_grad_evals if r.strong_grad_evals is not None else r.baseline_grad_evals
            ),
            format_seconds(
                r.strong_wall_time_s if r.strong_wall_time_s is not None else r.baseline_wall_time_s
            ),
        ]
        for r, acc in zip(rows, _accuracy_cells(rows, bold=False), strict=True)
    ]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]

    def fmt(line: Sequence[str]) -> str:
        return "  ".join(
            [line[0].ljust(widths[0])]
            + [text.rjust(width) for text, width in zip(line[1:], widths[1:], strict=True)]
        )

    lines = [fmt(header), "  ".join("-" * w for w in widths), *map(fmt, cells)]
    return "\n".join(lines + [f"warning: {warning}" for warning in machine_warnings(rows)])
