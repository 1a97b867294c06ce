"""CaFe Workbench: ``python main.py`` opens the workbench; sub-commands run headless."""

import os

# Two cores are shared by the window and its workers: idle OpenMP threads must sleep
# rather than spin. This has to be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from app.cli import entry  # noqa: E402

if __name__ == "__main__":
    entry()
