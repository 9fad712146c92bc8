"""One self-contained HTML page: the seed's table, each attack's share, figures, manifests.

Everything is inline (CSS, figures as base64 data URIs, no scripts), so the page can be
mailed or archived alone. Every string from a results file is escaped.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Sequence
from html import escape
from pathlib import Path
from typing import Any

from lpbench.io import atomic_write
from lpbench.machine import describe_machine
from lpbench.reporting.table import (
    COLUMNS,
    COST_COLUMNS,
    NOT_RUN,
    ResultRow,
    attack_setups,
    baseline_cell,
    format_count,
    format_percent,
    format_seconds,
    machine_warnings,
    randomised_notes,
)
from lpbench.version import __version__

#: MIME types of the figure files the page can embed.
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}

BREAKDOWN_COLUMNS = (
    "Attack",
    "Points attacked",
    "Points broken",
    "Robust accuracy after",
    "Gradients",
    "Forward passes",
    "Queries",
    "Wall time",
    "Points given up",
)

#: Results entries shown above the manifest in each model's reproducibility facts.
RUN_KEYS = ("name", "checkpoint", "model", "train_preset", "train_epoch", "preset")

STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1f2328; margin: 0 auto; padding: 24px 32px 48px; max-width: 1200px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 16px; margin: 24px 0 6px; }
.sub, .note, figcaption { color: #59636e; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 14px; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e5e8eb; vertical-align: top; }
th { background: #f3f5f7; text-align: left; font-weight: 600; }
tbody tr:nth-child(even) { background: #f9fafb; }
tfoot td { border-top: 2px solid #d0d7de; font-weight: 600; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th.num { text-align: right; }
.strongest { font-weight: 700; }
.muted { color: #59636e; }
.settings { color: #59636e; font-size: 12px; }
.warning { background: #fff8e1; border: 1px solid #e6c200; border-radius: 6px;
  padding: 8px 12px; margin: 12px 0; }
details { margin: 6px 0 12px; }
summary { cursor: pointer; color: #0b57d0; }
.indices { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  word-break: break-word; max-width: 760px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 6px 0; }
dt { font-weight: 600; color: #3d444d; }
dd { margin: 0; }
code, .hash { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 13px; word-break: break-all; }
figure { margin: 12px 0 20px; }
figure img { max-width: 100%; border: 1px solid #e5e8eb; }
footer { margin-top: 40px; color: #59636e; font-size: 12px; }
"""


def _e(value: Any) -> str:
    """``value`` as escaped text."""
    return escape(str(value))


def _table(
    header: Sequence[str],
    body: Sequence[Sequence[str]],
    *,
    numeric: Collection[int] | None = None,
    foot: Sequence[str] | None = None,
) -> str:
    """A table of escaped cells; ``numeric`` columns (default all but the first) align right."""
    numeric = range(1, len(header)) if numeric is None else numeric

    def cells(row: Sequence[str], tag: str) -> str:
        return "".join(
            f'<{tag} class="num">{c}</{tag}>' if i in numeric else f"<{tag}>{c}</{tag}>"
            for i, c in enumerate(row)
        )

    parts = [f"<table><thead><tr>{cells([_e(h) for h in header], 'th')}</tr></thead><tbody>"]
    parts += [f"<tr>{cells(row, 'td')}</tr>" for row in body]
    parts.append("</tbody>")
    if foot is not None:
        parts.append(f"<tfoot><tr>{cells(foot, 'td')}</tr></tfoot>")
    return "".join(parts) + "</table>"


def _results_table(rows: Sequence[ResultRow]) -> str:
    """The seed's table, the strongest column in bold, names linking to their breakdowns."""
    body = []
    for i, row in enumerate(rows):
        baseline = _e(baseline_cell(row))
        strongest = _e(format_percent(row.strongest_accuracy))
        body.append(
            [
                f'<a href="#model-{i}">{_e(row.name)}</a>',
                _e(format_percent(row.clean_accuracy)),
                baseline,
                f'<span class="strongest">{strongest}</span>',
            ]
        )
    return _table(COLUMNS, body)


def _cost_table(rows: Sequence[ResultRow]) -> str:
    """Points, eps and each column's cost, with the machine that paid it."""
    body = [
        [
            _e(row.name),
            _e(row.num_points),
            "n/a" if row.eps is None else _e(f"{row.eps:g}"),
            _e(format_count(row.baseline_grad_evals)),
            _e(format_seconds(row.baseline_wall_time_s)),
            _e(format_count(row.strong_grad_evals)),
            _e(format_seconds(row.strong_wall_time_s)),
            f'<span class="muted">{_e(row.machine)}</span>',
        ]
        for row in rows
    ]
    return _table([*COST_COLUMNS, "Machine"], body)


def _attack_setups(rows: Sequence[ResultRow]) -> str:
    """One item per distinct attack setup, naming the models it was run on."""
    items = []
    for (baseline, strong), names in attack_setups(rows).items():
        text = f"<b>{_e(', '.join(names))}</b>: baseline column: {_e(baseline or NOT_RUN)}"
        if strong:
            labels = ", ".join(line.split(":", 1)[0] for line in strong)
            text += (
                f"<details><summary>strongest column: worst case per point over all of "
                f"{len(strong)} attacks ({_e(labels)})</summary><ul>"
                + "".join(f'<li class="settings">{_e(line)}</li>' for line in strong)
                + "</ul></details>"
            )
        items.append(f"<li>{text}</li>")
    return f"<ul>{''.join(items)}</ul>"


def broken_by_attack(results: dict[str, Any]) -> dict[str, list[int]]:
    """Data-set indices of the points each attack broke, in the evaluation's attack order.

    Keys are attack labels (every attack, even one that broke nothing), then ``clean``
    (misclassified before any attack) and ``robust`` (broken by none).
    """
    groups: dict[str, list[int]] = {a["label"]: [] for a in results.get("attacks", [])}
    groups.update(clean=[], robust=[])
    for point in results.get("points", []):
        label = point.get("broken_by") or "robust"
        groups.setdefault(label, []).append(int(point["index"]))
    tail = {key: groups.pop(key) for key in ("clean", "robust")}
    return {**groups, **tail}


def _breakdown(results: dict[str, Any]) -> str:
    """Each attack's points attacked and broken, accuracy after it and cost; totals below."""
    attacks = results.get("attacks", [])
    body = []
    for a in attacks:
        body.append(
            [
                f'<span title="{_e(_settings(a.get("config", {})))}">{_e(a["label"])}</span>',
                _e(format_count(a.get("points_attacked"))),
                _e(format_count(a.get("points_broken"))),
                _e(format_percent(a.get("robust_accuracy_after"))),
                _e(format_count(a.get("grad_evals"))),
                _e(format_count(a.get("forward_evals"))),
                _e(format_count(a.get("queries"))),
                _e(format_seconds(a.get("wall_time_s"))),
                _e(format_count(a.get("points_given_up"))),
            ]
        )

    def total(key: str) -> int | None:
        values = [a.get(key) for a in attacks]
        return None if None in values else sum(values)

    foot = [
        "All attacks",
        "",
        _e(format_count(total("points_broken"))),
        _e(format_percent(results.get("robust_accuracy"))),
        _e(format_count(total("grad_evals"))),
        _e(format_count(total("forward_evals"))),
        _e(format_count(total("queries"))),
        _e(format_seconds(sum(a.get("wall_time_s", 0.0) for a in attacks))),
        _e(format_count(total("points_given_up"))),
    ]
    return _table(BREAKDOWN_COLUMNS, body, foot=foot)


def _settings(config: dict[str, Any]) -> str:
    """An attack's settings on one line."""
    return ", ".join(f"{k} {v}" for k, v in config.items() if v is not None)


def _per_point(results: dict[str, Any]) -> str:
    """Which attack broke which points: counts and data-set indices, collapsed."""
    if not results.get("points"):
        return ""
    groups = broken_by_attack(results)
    clean, robust = groups.pop("clean"), groups.pop("robust")
    broken = sum(len(indices) for indices in groups.values())

    def row(label: str, indices: list[int]) -> list[str]:
        shown = ", ".join(map(str, sorted(indices))) or "—"
        return [_e(label), _e(format_count(len(indices))), f'<div class="indices">{shown}</div>']

    body = [row(label, indices) for label, indices in groups.items()]
    body += [
        row("misclassified before any attack", clean),
        row("robust (broken by none)", robust),
    ]
    return (
        f"<details><summary>Which attack broke which point: {broken:,} broken, "
        f"{len(clean):,} misclassified clean, {len(robust):,} robust</summary>"
        + _table(("Broken by", "Points", "Data-set indices"), body, numeric=(1,))
        + "</details>"
    )


def _checks(results: dict[str, Any]) -> str:
    """The re-check of the adversarial examples and the budget schedule, when recorded."""
    lines = []
    verification = results.get("verification")
    if verification:
        lines.append(
            f"Re-checked {verification.get('adversarial_points_rechecked', 0):,} stored "
            f"adversarial examples: {verification.get('mismatches', 0):,} mismatches."
        )
    schedule = results.get("schedule")
    if schedule and schedule.get("budget_per_point") is not None:
        within = "within" if schedule.get("within_budget") else "over"
        lines.append(
            f"Schedule of {len(schedule.get('attacks', []))} attacks: budget "
            f"{schedule['budget_per_point']:,} {schedule.get('unit', '')}; they spent "
            f"{schedule.get('spent_per_point_mean', 0):,.1f} per point on average ({within} "
            "budget)."
        )
    return "".join(f'<p class="note">{_e(line)}</p>' for line in lines)


def _model_section(index: int, name: str, results: dict[str, Any]) -> str:
    """A model's heading, per-attack breakdown and per-point view."""
    facts = [
        f"{results.get('dataset', 'data set unknown')}",
        f"preset {results.get('preset', 'n/a')}",
        f"eps {results.get('eps', 'n/a')}",
        f"{results.get('num_points', 0):,} points",
        f"clean accuracy {format_percent(results.get('clean_accuracy'))}",
    ]
    return (
        f'<h3 id="model-{index}">{_e(name)}</h3><p class="sub">{_e(" · ".join(facts))}</p>'
        + _breakdown(results)
        + _checks(results)
        + _per_point(results)
    )


def _value(value: Any) -> str:
    """A manifest value as escaped HTML: nested definition lists, attack tables, hashes."""
    if isinstance(value, dict):
        return _definitions(value)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        body = [
            [_e(v.get("label", "")), _e(_settings({k: x for k, x in v.items() if k != "label"}))]
            for v in value
        ]
        return _table(("Label", "Settings"), body, numeric=())
    if isinstance(value, list):
        return _e(", ".join(map(str, value)))
    if value is None:
        return '<span class="muted">—</span>'
    if isinstance(value, str) and len(value) == 64 and set(value) <= set("0123456789abcdef"):
        return f'<span class="hash">{_e(value)}</span>'
    return _e(value)


def _definitions(data: dict[str, Any]) -> str:
    """A definition list of ``data``'s entries, in their order."""
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_value(v)}</dd>" for k, v in data.items())
    return f"<dl>{items}</dl>"


def _manifest(name: str, results: dict[str, Any]) -> str:
    """A model's reproducibility facts (run, manifest, machine), collapsed."""
    run = {k: results[k] for k in RUN_KEYS if k in results}
    manifest = results.get("manifest") or {}
    machine = describe_machine(manifest.get("machine"))
    summary = f"{name}: weights {str(manifest.get('weights_sha256', 'n/a'))[:12]}, {machine}"
    return (
        f"<details><summary>{_e(summary)}</summary>"
        + _definitions({**run, **manifest})
        + ("" if manifest else '<p class="note">No manifest recorded.</p>')
        + "</details>"
    )


def _data_uri(path: Path) -> str:
    """The image file as a base64 data URI, or ValueError for a type a page cannot show."""
    kind = IMAGE_TYPES.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"cannot embed {path} in the HTML report (not one of {list(IMAGE_TYPES)})")
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _figures(figures: dict[str, list[Path]]) -> str:
    """Each section's figures, embedded."""
    parts = []
    for section, paths in figures.items():
        parts.append(f"<h3>{_e(section)}</h3>")
        parts += [
            f'<figure><img src="{_data_uri(Path(p))}" alt="{_e(Path(p).stem)}">'
            f"<figcaption>{_e(Path(p).name)}</figcaption></figure>"
            for p in paths
        ]
    return "".join(parts)


def render_html(
    results: Sequence[dict[str, Any]],
    *,
    names: Sequence[str] | None = None,
    figures: dict[str, list[Path]] | None = None,
    title: str = "lpbench report",
) -> str:
    """The report page for evaluation results dicts (``names`` override their row names)."""
    row_names: list[str | None] = list(names) if names is not None else [None] * len(results)
    rows = [ResultRow.from_results(r, name=n) for r, n in zip(results, row_names, strict=True)]
    warnings = "".join(
        f'<p class="warning"><b>Warning:</b> {_e(w)}</p>' for w in machine_warnings(rows)
    )
    sections = [
        "<h2>Results</h2>",
        _results_table(rows),
        '<p class="note">A point counts as robust only if it is classified correctly under '
        "every restart of every attack of its column (worst case per point).</p>",
        *[f'<p class="note">{_e(note)}</p>' for note in randomised_notes(rows)],
        "<h2>Cost</h2>",
        _cost_table(rows),
        "<h2>Attacks</h2>",
        _attack_setups(rows),
        "<h2>Per-attack breakdown</h2>",
        '<p class="note">Attacks run in this order; each attacks only the points still '
        "standing, so its broken points are the ones it broke first. Hover over an attack "
        "for its settings.</p>",
        *(
            _model_section(i, row.name, r)
            for i, (row, r) in enumerate(zip(rows, results, strict=True))
        ),
    ]
    if figures:
        sections += ["<h2>Figures</h2>", _figures(figures)]
    sections += [
        "<h2>Reproducibility</h2>",
        *(_manifest(row.name, r) for row, r in zip(rows, results, strict=True)),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        f'<p class="sub">{len(rows)} evaluation{"s" if len(rows) != 1 else ""}</p>'
        + warnings
        + "".join(sections)
        + f"<footer>Written by lpbench {_e(__version__)}.</footer></body></html>\n"
    )


def write_html_report(
    results: Sequence[dict[str, Any]],
    out_dir: str | Path,
    *,
    names: Sequence[str] | None = None,
    figures: dict[str, list[Path]] | None = None,
    title: str = "lpbench report",
) -> Path:
    """Write ``report.html`` (see :func:`render_html`) into ``out_dir``; return its path."""
    page = render_html(results, names=names, figures=figures, title=title)
    return atomic_write(Path(out_dir) / "report.html", lambda tmp: tmp.write_text(page))
