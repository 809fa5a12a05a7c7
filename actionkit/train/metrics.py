"""metrics.jsonl (one JSON object a line: training steps and validation epochs) and its PNG plots.

``epoch`` in a record is the 0-based epoch it belongs to; the starting model's validation, before any
step, is logged with ``epoch`` −1 and plotted as epoch 0."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from actionkit.errors import OutputError
from actionkit.files import describe_os_error, write_atomically, write_text_atomically
from actionkit.plotting import pyplot

METRICS_NAME = "metrics.jsonl"


class MetricsLog:
    """Append-only JSON lines, flushed at once so a killed run keeps what it logged. A new run starts it
    empty (:meth:`start`), a resumed one drops what its killed epoch logged (:meth:`keep_epochs_before`),
    so each step is logged once. A failed write raises :class:`OutputError` naming the file."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / METRICS_NAME

    def start(self) -> None:
        """Begin a new run's log: whatever an earlier run left is deleted (the first record creates the file)."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError as e:
            raise OutputError(self.path, f"cannot delete: {describe_os_error(e)}") from e

    def append(self, record: dict[str, Any]) -> None:
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:
            raise OutputError(self.path, f"cannot write: {describe_os_error(e)}") from e

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def keep_epochs_before(self, epoch: int) -> None:
        """Drop what a killed epoch ``epoch`` (and later) logged: a resumed run logs it again."""
        kept = [r for r in self.records() if r["epoch"] < epoch]
        write_text_atomically(self.path, "".join(json.dumps(r) + "\n" for r in kept))


def plot_metrics(records: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """loss.png (every loss term per optimizer step, with a moving average) and accuracy.png
    (validation top-1 / top-5 / mean-class accuracy per epoch), each written atomically."""
    plt = pyplot("plotting the training curves")

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    train = [r for r in records if r.get("split") == "train"]
    if train:
        terms = [k for k in train[-1] if k.startswith("loss")]
        fig, ax = plt.subplots(figsize=(8, 4.5))
        steps = [r["step"] for r in train]
        for term in terms:
            values = [r.get(term, float("nan")) for r in train]
            ax.plot(steps, values, alpha=0.35, linewidth=0.8)
            window = max(1, len(values) // 20)
            smooth = [sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1])
                      for i in range(len(values))]
            ax.plot(steps, smooth, label=term, color=ax.lines[-1].get_color(), linewidth=1.8)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss (weighted term)")
        ax.set_yscale("log")
        ax.set_title("training loss terms (thin: per step, thick: moving average)")
        ax.legend(loc="upper right", fontsize=8)
        fig.tight_layout()
        written.append(_save_png(fig, out_dir / "loss.png"))
        plt.close(fig)
    val = [r for r in records if r.get("split") == "val"]
    if val:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        epochs = [r["epoch"] + 1 for r in val]
        for key in ("top1", "top5", "mean_class"):
            ax.plot(epochs, [100 * r[key] for r in val], marker="o", label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title("validation accuracy")
        ax.legend(loc="lower right")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        written.append(_save_png(fig, out_dir / "accuracy.png"))
        plt.close(fig)
    return written


def _save_png(fig: Any, path: Path) -> Path:
    return write_atomically(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
