"""Per-epoch training logs: JSON lines always, TensorBoard when it is installed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lpbench.io import append_jsonl, atomic_write

LOG_NAME = "train_log.jsonl"
TENSORBOARD_DIR = "tensorboard"


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines log (a run folder or the file); [] when absent."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class RunLog:
    """Writes one record per epoch; ``enabled=False`` (ranks other than 0) writes nothing.

    ``keep`` records (of a resumed run) are rewritten first, dropping any line of an epoch
    that a kill left without a saved state. TensorBoard scalars go to ``tensorboard/``
    when the ``tensorboard`` package is installed (``pip install lpbench[tensorboard]``).
    """

    def __init__(self, out_dir: Path, keep: list[dict[str, Any]], enabled: bool = True) -> None:
        self.path = out_dir / LOG_NAME
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        text = "".join(json.dumps(r) + "\n" for r in keep)
        atomic_write(self.path, lambda tmp: tmp.write_text(text))
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        start = keep[-1]["epoch"] + 1 if keep else 0
        self.writer = SummaryWriter(str(out_dir / TENSORBOARD_DIR), purge_step=start)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        append_jsonl(self.path, record)
        if self.writer is not None:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, int | float):
                    self.writer.add_scalar(key.replace("_", "/", 1), value, record["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
