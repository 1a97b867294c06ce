"""t-SNE in a child process, so that a cancel ends it at once.

scikit-learn's t-SNE cannot be interrupted, and one call of 250 iterations (its
smallest) on the 16,861 items of Ciao takes 40-90 s on one core. The projection runs
in a process of its own, in chunks of 250 iterations that each start from the previous
layout (the progress is told after each); a cancel terminates the process. NOTE: the
first chunk runs with early exaggeration, the rest without; the momentum stays at 0.5
(scikit-learn's exploration value) after the first chunk, and the optimiser's
per-point gains restart each chunk. The descent is the same KL objective.
"""

from __future__ import annotations

import math
import multiprocessing
import queue
from collections.abc import Callable

import numpy as np

# the smallest number of iterations scikit-learn's TSNE runs per call
CHUNK = 250
# how often the parent looks at the cancel flag, in seconds
POLL_SECONDS = 0.1


def tsne(
    data: np.ndarray,
    perplexity: float,
    iterations: int,
    seed: int,
    should_stop: Callable[[], bool],
    progress: Callable[[float], None],
) -> np.ndarray:
    """(N, D) -> (N, 2); raises InterruptedError within ``POLL_SECONDS`` of
    ``should_stop()`` turning true, RuntimeError when the child fails."""
    # spawn, not fork: the caller may be a GUI process with threads of its own
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(
        target=_run_chunks,
        args=(np.asarray(data), perplexity, iterations, seed, results),
        daemon=True,
        name="cafe-tsne",
    )
    child.start()
    try:
        while True:
            if should_stop():
                raise InterruptedError("projection cancelled")
            try:
                kind, value = results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if child.is_alive():
                    continue
                # it may have put its last message just before it ended
                try:
                    kind, value = results.get(timeout=1.0)
                except queue.Empty:
                    raise RuntimeError(
                        f"t-SNE ended without a result (exit code {child.exitcode})"
                    ) from None
            if kind == "progress":
                progress(value)
            elif kind == "done":
                return value
            else:
                raise RuntimeError(f"t-SNE failed: {value}")
    finally:
        if child.is_alive():
            child.terminate()
        child.join(timeout=5)
        results.close()


def _run_chunks(
    data: np.ndarray, perplexity: float, iterations: int, seed: int, results
) -> None:
    """The child: every chunk's progress, then ("done", layout) or ("error", text)."""
    try:
        from sklearn.manifold import TSNE

        chunks = max(1, math.ceil(iterations / CHUNK))
        # scikit-learn's "auto" rate, fixed so every chunk steps alike
        rate = max(len(data) / 12.0 / 4.0, 50.0)
        layout: np.ndarray | str = "pca"
        for chunk in range(chunks):
            layout = TSNE(
                n_components=2,
                perplexity=perplexity,
                early_exaggeration=12.0 if chunk == 0 else 1.0,
                learning_rate=rate,
                max_iter=CHUNK,
                init=layout,
                random_state=seed,
            ).fit_transform(data)
            results.put(("progress", (chunk + 1) / chunks))
        results.put(("done", np.asarray(layout)))
    except Exception as exc:  # reported to the parent, which raises it
        results.put(("error", f"{type(exc).__name__}: {exc}"))
