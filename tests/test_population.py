"""The model population's split is fixed: sides, families and the held-out files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from lpbench.data import sha256sum

ROOT = Path(__file__).parent.parent
SPEC = json.loads((ROOT / "benchmarks" / "population" / "population.json").read_text())
LOCK = ROOT / "benchmarks" / "population" / "held_out.sha256"
FAMILIES = {"plain", "clp", "lsq", "alp", "at", "ll-target", "architecture", "activation", "masker"}


def test_population_is_large_and_split_by_family() -> None:
    models = SPEC["models"]
    sides = Counter(m["side"] for m in models)
    assert len(models) >= 16 and set(sides) == {"tuning", "held-out"}
    assert sides["held-out"] * 3 >= len(models)
    for family in FAMILIES:
        on = {m["side"] for m in models if m["family"] == family}
        assert on == {"tuning", "held-out"}, family
    names = [m["name"] for m in models]
    assert len(set(names)) == len(names)


def test_every_member_says_how_it_is_made() -> None:
    names = {m["name"] for m in SPEC["models"]}
    for model in SPEC["models"]:
        made = [key for key in ("run", "zoo", "base") if key in model]
        assert len(made) == 1, model["name"]
        if "run" in model:
            assert model["run"] in SPEC["runs"] and model["epochs"] >= 1
        if "base" in model:
            assert model["base"] in names and model["masker"]


def test_held_out_files_have_not_changed() -> None:
    held_out = {m["name"] for m in SPEC["models"] if m["side"] == "held-out"}
    locked = dict(line.split("  ")[::-1] for line in LOCK.read_text().splitlines())
    folders = {str(Path(p).parent.relative_to("benchmarks/population/models")) for p in locked}
    assert folders == held_out
    changed = [path for path, digest in locked.items() if sha256sum(ROOT / path) != digest]
    assert not changed, f"held-out model files changed: {changed}"
