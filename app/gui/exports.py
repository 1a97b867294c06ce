"""Writing what the compare, inspect and embedding views show to files.

Plots go to PNG or SVG (pyqtgraph's exporters, so the file is what the screen shows),
tables to CSV (the comparison table also to LaTeX and Markdown, rendered by
``engine.reporting``), per-user results to CSV or Parquet, and item embeddings to a
``.npy`` array with a CSV of labels beside it, row for row.

The write functions take a path and raise ``ExportError`` with a message naming the
file; the ``ask_*`` helpers add the file dialog and the error box for the views.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyqtgraph as pg
import pyqtgraph.exporters as pg_exporters
from PySide6.QtCore import QRect
from PySide6.QtGui import QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QFileDialog, QMenu, QToolButton, QWidget

from app.gui import dialogs
from engine.errors import CafeError

log = logging.getLogger(__name__)

PLOT_FILTER = "PNG image (*.png);;SVG drawing (*.svg)"
TABLE_FILTER = "CSV table (*.csv)"
REPORT_FILTER = "CSV table (*.csv);;LaTeX table (*.tex);;Markdown table (*.md)"
RESULTS_FILTER = "CSV table (*.csv);;Parquet file (*.parquet)"
EMBEDDING_FILTER = "NumPy array (*.npy)"


class ExportError(CafeError):
    """A file could not be written; the message names it and the reason."""


def _suffix(path: Path, allowed: tuple[str, ...]) -> str:
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise ExportError(
            f"{path}: cannot tell the format from {suffix or 'no extension'}; "
            f"end the name with {', '.join(allowed)}."
        )
    return suffix


def _writing(path: Path, write: Callable[[], None]) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write()
    except OSError as exc:
        raise ExportError(f"{path}: could not write the file ({exc}).") from exc
    log.info("exported %s", path)
    return path


def export_plot(
    plot: pg.PlotWidget | pg.GraphicsLayoutWidget, path: str | Path
) -> Path:
    """The plot as drawn, to PNG (at least 1200 px wide) or SVG."""
    path = Path(path)
    suffix = _suffix(path, (".png", ".svg"))
    if suffix == ".svg":
        return _writing(path, lambda: _render_svg(plot, path))
    scene_item = plot.getPlotItem() if isinstance(plot, pg.PlotWidget) else plot.scene()
    exporter = pg_exporters.ImageExporter(scene_item)
    exporter.params["width"] = max(1200, int(exporter.params["width"]))
    return _writing(path, lambda: exporter.export(str(path)))


def _render_svg(plot: QWidget, path: Path) -> None:
    """Paint the plot widget into an SVG file.

    NOTE: pyqtgraph's own SVG exporter fails on the paths Qt 6 writes (a closing "Z"
    it cannot parse), so the widget is painted through Qt's SVG generator instead;
    the result is the same vector drawing, at the widget's size.
    """
    generator = QSvgGenerator()
    generator.setFileName(str(path))
    generator.setSize(plot.size())
    generator.setViewBox(QRect(0, 0, plot.width(), plot.height()))
    generator.setTitle(path.stem)
    painter = QPainter(generator)
    try:
        plot.render(painter)
    finally:
        painter.end()


def export_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Any table as CSV, cells as they are (no formatting lost)."""
    path = Path(path)
    _suffix(path, (".csv",))
    return _writing(path, lambda: frame.to_csv(path, index=False))


def export_text(text: str, path: str | Path, allowed: tuple[str, ...]) -> Path:
    """Rendered text (a LaTeX or Markdown table) as UTF-8."""
    path = Path(path)
    _suffix(path, allowed)
    return _writing(path, lambda: path.write_text(text, encoding="utf-8"))


def export_user_results(frame: pd.DataFrame, path: str | Path) -> Path:
    """A run's per-user results as CSV or Parquet."""
    path = Path(path)
    suffix = _suffix(path, (".csv", ".parquet"))
    if suffix == ".csv":
        return _writing(path, lambda: frame.to_csv(path, index=False))
    return _writing(path, lambda: frame.to_parquet(path, index=False))


def export_embeddings(
    embeddings: np.ndarray, labels: pd.DataFrame, path: str | Path
) -> tuple[Path, Path]:
    """(N, D) embeddings to ``name.npy`` and their N label rows to ``name.csv``."""
    path = Path(path)
    _suffix(path, (".npy",))
    if len(embeddings) != len(labels):
        raise ExportError(
            f"{path}: {len(embeddings)} embeddings but {len(labels)} label rows."
        )
    labels_path = path.with_suffix(".csv")
    _writing(path, lambda: np.save(path, np.asarray(embeddings)))
    _writing(labels_path, lambda: labels.to_csv(labels_path, index=False))
    return path, labels_path


# ---- dialogs for the views


# where the save dialogs open: the workbench hands its settings over at start, and the
# folder of the last export is remembered there (None: the working folder)
settings = None


def ask_path(parent: QWidget, title: str, filters: str, name: str) -> Path | None:
    """A save dialog in the folder of the last export; the extension of the chosen
    filter is added when missing."""
    start = name
    if settings is not None:
        start = str(Path(settings.last_folder("export")) / name)
    chosen, selected = QFileDialog.getSaveFileName(parent, title, start, filters)
    if not chosen:
        return None
    path = Path(chosen)
    if settings is not None:
        settings.set_last_folder("export", path.parent)
    if not path.suffix and "*." in selected:
        path = path.with_suffix(selected.split("*", 1)[1].split(")", 1)[0])
    return path


def run_export(parent: QWidget, title: str, write: Callable[[], object]) -> bool:
    """Call ``write``; show an error box instead of raising."""
    try:
        write()
    except (ExportError, CafeError, ValueError, ImportError) as exc:
        dialogs.show_error(parent, title, str(exc))
        return False
    return True


def save_plot(
    parent: QWidget,
    plot: pg.PlotWidget,
    stem: str,
    record: Callable[[Path], None] | None = None,
) -> Path | None:
    """Ask where, write the plot; ``record(path)`` is told of a written file (the
    run store keeps exports of a run as its artifacts)."""
    path = ask_path(parent, "Export plot", PLOT_FILTER, stem + ".png")
    if path is None or not run_export(
        parent, "Export plot", lambda: export_plot(plot, path)
    ):
        return None
    if record is not None:
        record(path)
    return path


def save_table(
    parent: QWidget,
    frame: pd.DataFrame,
    stem: str,
    record: Callable[[Path], None] | None = None,
) -> Path | None:
    """Ask where, write the table as CSV; ``record`` as for :func:`save_plot`."""
    path = ask_path(parent, "Export table", TABLE_FILTER, stem + ".csv")
    if path is None or not run_export(
        parent, "Export table", lambda: export_table(frame, path)
    ):
        return None
    if record is not None:
        record(path)
    return path


def record_in_store(store, run_ids, what: str, path: Path) -> None:
    """Keep an exported file as an artifact of each run it came from (path, size,
    hash). The export itself has succeeded: a busy store only costs the record."""
    from storage import queries

    for run_id in run_ids:
        try:
            store.transact(queries.record_export, int(run_id), what, path)
        except Exception:  # the file is written; losing its record is not fatal
            log.exception("run %s: could not record the export %s", run_id, path)


def export_button(
    parent: QWidget, entries: dict[str, Callable[[], None]], text: str = "Export"
) -> QToolButton:
    """A button whose menu lists the view's exports; each entry opens its dialog."""
    button = QToolButton(parent)
    button.setText(text)
    button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    menu = QMenu(button)
    for label, action in entries.items():
        menu.addAction(label, lambda _checked=False, action=action: action())
    button.setMenu(menu)
    return button
