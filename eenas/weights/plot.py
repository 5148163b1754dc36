"""``eenas weights show NAME --plot``: an entry's accuracy against pretraining epochs, where saturation shows."""

from __future__ import annotations

from pathlib import Path

from eenas.errors import EenasError
from eenas.precision import FLOAT
from eenas.report.figures import COLORS, panels, save, style
from eenas.weights.registry import WeightsEntry


def plot_history(entry: WeightsEntry, path: Path) -> Path:
    """Training and validation top-1 every few epochs, and the published float test top-1 for scale."""
    if not entry.history:
        raise EenasError(f"weights show --plot: '{entry.name}' records no accuracy against epochs")
    epochs = [h["epoch"] for h in entry.history]
    fig, (ax,) = panels(1, width=7.5, height=4.2)
    ax.plot(epochs, [100 * h["train_accuracy"] for h in entry.history], marker=".", color=COLORS[0],
            label="training (augmented, running mean over the epoch)")
    ax.plot(epochs, [100 * h["val_accuracy"] for h in entry.history], marker="o", color=COLORS[1],
            label="validation")
    if FLOAT.tag in entry.accuracy:
        test = 100 * entry.accuracy[FLOAT.tag]["test"]
        ax.axhline(test, ls=":", color="gray", label=f"published float test top-1 ({test:.2f}%)")
    recipe, threads = entry.recipe, f"{entry.threads} thread{'s' * (entry.threads > 1)}"
    style(ax, f"{entry.name}: top-1 against pretraining epochs\n({recipe.get('schedule', '')}, peak lr "
              f"{recipe.get('lr', '?')}, {entry.wall_time_s / 3600:.1f} h on {threads}, {entry.cpu})",
          "epoch", "top-1 (%)")
    ax.legend(fontsize=7, loc="lower right")
    return save(fig, path)
