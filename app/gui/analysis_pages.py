"""The Compare, Inspect and Embeddings pages of the main window, and their links to the
runs table: "Compare" there opens the comparison of the selected runs, "Inspect" opens
the run in the inspect and embedding views.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.gui.compare_view import CompareView
from app.gui.embedding_view import EmbeddingView
from app.gui.inspect_view import InspectView
from app.gui.run_source import StoreSource


@dataclass
class AnalysisPages:
    source: StoreSource
    compare: CompareView
    inspect: InspectView
    embeddings: EmbeddingView


def add_analysis_pages(window) -> AnalysisPages:
    """Add the three pages to ``window`` (a MainWindow with ``store``,
    ``runs_panel``, ``add_page`` and ``show_page``) and connect them."""
    source = StoreSource(window.store)
    pages = AnalysisPages(
        source, CompareView(source), InspectView(source), EmbeddingView(source)
    )
    window.add_page(pages.compare, "Compare")
    window.add_page(pages.inspect, "Inspect")
    window.add_page(pages.embeddings, "Embeddings")

    def compare(ids: list) -> None:
        window.show_page(pages.compare)
        pages.compare.compare(ids)

    def inspect(run_id: int) -> None:
        window.show_page(pages.inspect)
        pages.inspect.select_run(run_id)
        pages.embeddings.show_run(run_id)

    finished: set[int] = set()

    def runs_changed(runs: list) -> None:
        # the run pickers are refilled only when a run finishes or goes away
        now = {run.id for run in runs if run.status == "finished"}
        if now != finished:
            finished.clear()
            finished.update(now)
            pages.inspect.refresh_runs()
            pages.embeddings.refresh_runs()

    window.runs_panel.compareRequested.connect(compare)
    window.runs_panel.inspectRequested.connect(inspect)
    window.runs_panel.runsChanged.connect(runs_changed)
    return pages
