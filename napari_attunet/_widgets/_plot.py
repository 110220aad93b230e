"""A small live plot of training loss and validation Dice per epoch (matplotlib in Qt)."""

from __future__ import annotations

import math

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

BACKGROUND = "#262930"  # napari's dark theme
FOREGROUND = "#d1d2d4"


class TrainingPlot:
    """Loss (left axis) and validation Dice of disc and cup (right axis, 0..1) per epoch."""

    def __init__(self, height_px: int = 220):
        self.figure = Figure(figsize=(3.2, 2.2), dpi=100, facecolor=BACKGROUND, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(height_px)
        self.loss_axes = self.figure.add_subplot(1, 1, 1)
        self.dice_axes = self.loss_axes.twinx()
        self.history: list[dict] = []
        self._style()
        self.canvas.draw_idle()

    def _style(self) -> None:
        for axes in (self.loss_axes, self.dice_axes):
            axes.set_facecolor(BACKGROUND)
            axes.tick_params(colors=FOREGROUND, labelsize=7)
            for spine in axes.spines.values():
                spine.set_color(FOREGROUND)
        self.loss_axes.set_xlabel("epoch", color=FOREGROUND, fontsize=8)
        self.loss_axes.set_ylabel("loss", color="#ff9f43", fontsize=8)
        self.dice_axes.yaxis.tick_right()  # clear() puts a twin axis' ticks and label back on the left
        self.dice_axes.yaxis.set_label_position("right")
        self.dice_axes.set_ylabel("validation Dice", color="#7bd88f", fontsize=8)
        self.dice_axes.set_ylim(0, 1)

    def clear(self) -> None:
        self.history = []
        self.redraw()

    def add_epoch(self, metrics: dict) -> None:
        self.history.append(dict(metrics))
        self.redraw()

    def redraw(self) -> None:
        self.loss_axes.clear()
        self.dice_axes.clear()
        self._style()
        epochs = [h["epoch"] for h in self.history]
        if epochs:
            self.loss_axes.plot(epochs, [h["loss"] for h in self.history], "o-", color="#ff9f43", ms=3,
                                lw=1.2, label="loss")
            for key, colour, label in (("dice_od", "#ff5555", "Dice disc"), ("dice_oc", "#f1fa8c", "Dice cup")):
                points = [(h["epoch"], h[key]) for h in self.history
                          if key in h and not math.isnan(h[key])]
                if points:
                    xs, ys = zip(*points)
                    self.dice_axes.plot(xs, ys, "s--", color=colour, ms=3, lw=1.0, label=label)
            handles = self.loss_axes.get_legend_handles_labels()
            extra = self.dice_axes.get_legend_handles_labels()
            legend = self.loss_axes.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=7,
                                           loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3,
                                           frameon=False)
            for text in legend.get_texts():
                text.set_color(FOREGROUND)
            self.loss_axes.set_xlim(0.5, max(epochs) + 0.5)
        self.canvas.draw_idle()
