"""The training curve's figure."""

from __future__ import annotations

from matplotlib.figure import Figure

from lpbench.training.plots import plot_training


def test_one_epoch_gets_whole_epoch_ticks(tmp_path, monkeypatch) -> None:
    drawn: list[Figure] = []
    save = Figure.savefig

    def keep(self, *args, **kwargs):
        drawn.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    for epochs in ([1], [1, 2, 3]):
        records = [{"epoch": e, "test_accuracy": 0.9, "loss_ce": 0.5} for e in epochs]
        drawn.clear()
        assert plot_training(records, tmp_path / "curve.png").stat().st_size > 0
        for axes in drawn[0].axes:
            low, high = axes.get_xlim()
            shown = [t for t in axes.get_xticks() if low <= t <= high]
            assert shown == [float(e) for e in epochs]  # e.g. not 0.945 ... 1.05
