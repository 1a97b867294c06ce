"""The run store: datasets, runs, per-epoch metrics, attention maps, per-user results
and artifacts in SQLite (or any SQLAlchemy database), with alembic migrations.

The API the workbench and the worker use:

- ``default_url()``: ``$CAFE_DB`` (a path or URL), else ``runs.db`` in the user data
  folder of "cafe-workbench".
- ``open_store(url=None) -> Store``: creates or upgrades the database to the latest
  migration; a damaged file, or one a newer workbench wrote, raises ``StoreError``.
  ``Store.url``; ``Store.data_dir`` (the database's folder; run files go to
  ``Store.run_dir(id)`` = ``<data_dir>/runs/<id>/``); ``Store.session(write=False)``
  yields a Session that commits on success; ``Store.transact(fn, *args)`` runs
  ``fn(session, *args)`` in one write transaction, retried while another process holds
  the lock - use it for writes. One Store per process; one session per thread.
- ``storage.queries`` (Session first): ``register_dataset`` (data paths stored
  absolute; ``name=`` names or renames the version), ``list_datasets``,
  ``get_dataset``, ``create_run``, ``list_runs`` (``RunSummary``: id, model, dataset,
  dataset_id, status, seed, protocol, device, created, started, finished, seconds,
  epochs, max_epochs, best_epoch, best, test, error, batch, batches, heartbeat),
  ``get_run`` (``RunDetail``: plus
  spec, log, pid, host, versions, stop_reason, dataset_hash), ``run_curves`` (epoch,
  split, name, value), ``compare_runs`` (config as ``model.X`` / ``train.X``, metrics as
  ``valid NDCG@5`` / ``test NDCG@5``), ``user_results``, ``attention_maps`` (keys like
  ``"item layer 1 head 2"``, (L, L) float32), ``checkpoint_path``, ``set_status``,
  ``mark_stale_runs``, ``mark_stale_run``, ``delete_run``, ``run_spec``; the worker's
  writers ``start_run``, ``add_metrics``, ``update_progress``, ``beat``,
  ``add_attention``, ``add_user_results``, ``append_log``, ``record_artifact``
  (``file_digest`` hashes a file before the transaction), ``record_export``.
  ``storage.store.after_commit(session, work)`` runs ``work`` once the session has
  committed (``delete_run`` removes the run's folder so).
- ``app.worker.launch_worker(run_id, db_url, threads=1, resume=False) -> Popen``,
  ``app.worker.cancel_worker(popen)`` (SIGTERM), ``app.worker.worker_command(...)``
  (the argv, for a launcher of its own) and ``app.worker.settle_run(store, run_id,
  returncode, stderr_tail)`` (after a worker exits: a run it left "running" becomes
  interrupted or failed).
- Metric names: splits "train" (loss terms, "seconds"), "valid" (metrics at each
  validation, "seconds"), "test" (at the best epoch); a second protocol's numbers are
  named with it, e.g. "full NDCG@5", and kept out of ``best``/``test``.
"""

from storage.errors import StoreError, UnsafePathError
from storage.store import Store, default_url, open_store

__all__ = ["Store", "StoreError", "UnsafePathError", "default_url", "open_store"]
