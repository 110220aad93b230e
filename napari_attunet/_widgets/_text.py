"""A text area for the widgets' status and result lines: always shown whole, never cut off.

The text wraps at the widget's width, also inside long names and paths (after ``/``,
``_``, ``-`` and ``.``), and the area is as tall as the wrapped text, at least a set
number of lines.  Its width never follows the text, so a long message cannot widen the
dock and resize napari's canvas; its height changes only when the text needs more or
fewer lines than before.
"""

from __future__ import annotations

import re

from magicgui.widgets import Label

BREAK = "\u200b"
"""Zero-width space: where a long word may wrap; never part of :attr:`TextArea.value`."""
LONG_WORD = 12
"""Words longer than this get wrapping points."""
_SEPARATOR = re.compile(r"([/\\_\-.])")


def breakable(text: str) -> str:
    """``text`` with wrapping points in its long words (names, paths), after separators or every few letters."""

    def split(word: str) -> str:
        if len(word) <= LONG_WORD:
            return word
        parts = _SEPARATOR.sub(r"\1" + BREAK, word).split(BREAK)
        pieces = [BREAK.join(part[i:i + LONG_WORD] for i in range(0, len(part), LONG_WORD)) for part in parts]
        return BREAK.join(pieces)

    return re.sub(r"\S+", lambda match: split(match.group()), text)


class TextArea(Label):
    """A wrapping, read-only label whose text is always visible whole (see the module's description)."""

    def __init__(self, lines: int = 1, **kwargs):
        super().__init__(**kwargs)
        from qtpy.QtCore import QObject, Qt
        from qtpy.QtWidgets import QSizePolicy

        self.min_lines = lines
        native = self.native
        native.setTextFormat(Qt.TextFormat.PlainText)
        native.setWordWrap(True)
        native.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

        area = self

        class Refit(QObject):
            def eventFilter(self, watched, event):  # noqa: N802 - Qt's name
                if event.type() == event.Type.Resize and event.size().width() != event.oldSize().width():
                    area.fit()
                return False

        self._refit = Refit(native)
        native.installEventFilter(self._refit)
        self.fit()

    @property
    def value(self) -> str:
        return str(Label.value.fget(self)).replace(BREAK, "")

    @value.setter
    def value(self, text) -> None:
        Label.value.fset(self, breakable(str(text)))
        if hasattr(self, "_refit"):  # (magicgui sets the first value before __init__ is over)
            self.fit()

    def needed_height(self, width: int | None = None) -> int:
        """Height (pixels) the text needs at ``width`` (default: the label's own), at least :attr:`min_lines`."""
        from qtpy.QtCore import QRect, Qt

        native = self.native
        metrics = native.fontMetrics()
        width = native.contentsRect().width() if width is None else width
        lines = self.min_lines * metrics.lineSpacing()
        if width <= 0 or not native.text():
            return lines
        wrapped = metrics.boundingRect(QRect(0, 0, width, 1 << 20), Qt.TextFlag.TextWordWrap, native.text())
        return max(lines, wrapped.height())

    def fit(self) -> None:
        """Make the area as tall as its text needs at its present width."""
        native = self.native
        margins = native.contentsMargins()
        height = self.needed_height() + margins.top() + margins.bottom() + 4
        if native.height() != height or native.minimumHeight() != height:
            native.setFixedHeight(height)
