"""Dock layout helpers: titled sections and compact tables, shared by the sonolabel docks."""

from __future__ import annotations

from qtpy.QtWidgets import QAbstractItemView, QGroupBox, QHeaderView, QSizePolicy, QVBoxLayout


def section(title: str, *widgets) -> QGroupBox:
    """A titled group of magicgui or Qt widgets (magicgui containers keep their field labels)."""
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    layout.setContentsMargins(6, 4, 6, 4)
    for w in widgets:
        layout.addWidget(getattr(w, "native", w))
    return box


def compact(table, rows: int) -> None:
    """Show a magicgui Table without row numbers, columns fitted to their contents and room for ``rows`` rows;
    a click selects the whole row."""
    view = table.native
    view.verticalHeader().setVisible(False)
    view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    height = view.horizontalHeader().sizeHint().height() + rows * view.verticalHeader().defaultSectionSize() + 2 * view.frameWidth()
    view.setMinimumHeight(height)
    view.setMaximumHeight(height + view.horizontalScrollBar().sizeHint().height())


def status_line(label, lines: int = 3) -> None:
    """Let a magicgui Label wrap over the section's whole width, with room for ``lines`` lines."""
    q = label.native
    q.setWordWrap(True)
    q.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
    q.setMinimumWidth(280)
    q.setMinimumHeight(lines * q.fontMetrics().lineSpacing())
