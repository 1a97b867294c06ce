"""The workbench window (PySide6 + pyqtgraph).

One view per module, each runnable alone (``python -m app.gui.data_panel``). Nothing
here trains: runs execute in worker processes (``app.worker``) and the views read the
run store. Long work in the GUI process (reading a file, computing statistics) runs on a
thread pool through :mod:`app.gui.tasks` and reports back through signals.
"""
