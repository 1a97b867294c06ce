"""Worker processes started by this window: launch, follow, cancel, settle.

Each run trains in its own process (``python main.py worker``), never in the GUI.
The worker's command line comes from :func:`app.worker.worker_command`, but its stdout
(JSON lines, one per event) and stderr go to files in the run's folder rather than to
pipes, and it gets its own session: a worker outlives the window when the user closes
it and chooses to keep the run going (a pipe would break on its next write), and the
events file can be followed again after a restart. A reader thread tails the events
file and forwards each event to the GUI thread as a signal.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from storage.queries import WORKER_ERRORS_FILE

log = logging.getLogger(__name__)

EVENTS_FILE = "events.jsonl"
ERRORS_FILE = WORKER_ERRORS_FILE


@dataclass
class Job:
    run_id: int
    popen: subprocess.Popen
    events: Path
    errors: Path
    stop: threading.Event = field(default_factory=threading.Event)
    # set by the worker's "finished" event: the run has recorded its end, and the
    # process is only exiting
    ended: threading.Event = field(default_factory=threading.Event)


class WorkerJobs(QObject):
    """The worker processes of this window, by run id."""

    event = Signal(int, dict)  # run id, one JSON event of the worker
    exited = Signal(int, int)  # run id, return code

    def __init__(self, store, threads: int = 1, parent=None):
        super().__init__(parent)
        self.store = store
        self.threads = threads
        self.jobs: dict[int, Job] = {}
        self.watch = QTimer(self, interval=500)
        self.watch.timeout.connect(self._check_exits)
        self.watch.start()

    def launch(self, run_id: int, resume: bool = False) -> Job:
        from app.worker import worker_command

        folder = self.store.run_dir(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        events, errors = folder / EVENTS_FILE, folder / ERRORS_FILE
        env = dict(os.environ)
        # idle OpenMP threads sleep instead of spinning on the cores the GUI needs
        env["OMP_WAIT_POLICY"] = "PASSIVE"
        env["OMP_NUM_THREADS"] = str(max(1, self.threads))
        env["PYTHONUNBUFFERED"] = "1"
        command = worker_command(run_id, self.store.url, self.threads, resume)
        with open(events, "a") as out, open(errors, "a") as err:
            offset = out.tell()
            popen = subprocess.Popen(
                command,
                cwd=str(Path(__file__).resolve().parents[2]),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        job = Job(run_id, popen, events, errors)
        self.jobs[run_id] = job
        threading.Thread(
            target=self._follow, args=(job, offset), daemon=True, name=f"run-{run_id}"
        ).start()
        log.info("run %d: worker pid %d", run_id, popen.pid)
        return job

    def running(self) -> list[int]:
        """Runs whose worker is alive and has not yet recorded its end."""
        return [
            rid
            for rid, job in self.jobs.items()
            if job.popen.poll() is None and not job.ended.is_set()
        ]

    def is_running(self, run_id: int) -> bool:
        job = self.jobs.get(run_id)
        return job is not None and job.popen.poll() is None

    def cancel(
        self, run_id: int, pid: int | None = None, host: str | None = None
    ) -> bool:
        """Ask the run's worker to stop (it saves and marks the run cancelled).

        A run started elsewhere (the command line, an earlier window) is stopped
        through the pid and host the store recorded, but only when the host is this
        one and the process there is still a worker of this run: a pid recorded long
        ago may belong to another program by now. Returns whether a signal was sent.
        """
        job = self.jobs.get(run_id)
        if job is not None and job.popen.poll() is None:
            job.popen.send_signal(signal.SIGTERM)
            return True
        if not pid:
            return False
        if host != socket.gethostname():
            log.warning(
                "run %d: its worker runs on %s, not on this host; not signalled",
                run_id,
                host,
            )
            return False
        if not is_worker_of(pid, run_id):
            log.warning(
                "run %d: pid %d is no longer its worker; not signalled", run_id, pid
            )
            return False
        try:
            os.kill(pid, signal.SIGTERM)
            return True
        except (ProcessLookupError, PermissionError) as exc:
            log.warning("run %d: cannot signal pid %d (%s)", run_id, pid, exc)
        return False

    def cancel_all(self, wait: float = 5.0) -> None:
        for run_id in self.running():
            self.cancel(run_id)
        deadline = time.monotonic() + wait
        for job in self.jobs.values():
            try:
                job.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("run %d did not stop within %.0fs", job.run_id, wait)

    def release(self) -> None:
        """Stop following; the workers themselves keep running."""
        self.watch.stop()
        for job in self.jobs.values():
            job.stop.set()

    def _check_exits(self) -> None:
        for run_id, job in list(self.jobs.items()):
            code = job.popen.poll()
            if code is None:
                continue
            del self.jobs[run_id]
            job.stop.set()
            self._settle(job, code)
            self.exited.emit(run_id, code)

    def _settle(self, job: Job, code: int) -> None:
        """A worker that died without recording an end leaves a failed/interrupted
        run, with the tail of its stderr as the error."""
        from app.worker import settle_run

        try:
            tail = job.errors.read_text(errors="replace")[-4000:]
        except OSError:
            tail = ""
        try:
            settle_run(self.store, job.run_id, code, tail)
        except Exception:  # the store may be busy; start-up marks stale runs anyway
            log.exception("run %d: could not settle after exit %d", job.run_id, code)

    def _follow(self, job: Job, offset: int) -> None:
        """Tail the events file from ``offset`` until the job is released or ends."""
        try:
            self._tail(job, offset)
        except RuntimeError:
            # the window was destroyed under this thread (its signals with it):
            # nobody is left to tell; the worker goes on recording in the store
            log.debug("run %d: stopped following, the window is gone", job.run_id)

    def _tail(self, job: Job, offset: int) -> None:
        with open(job.events, encoding="utf-8", errors="replace") as fh:
            fh.seek(offset)
            pending = ""
            while True:
                # looked at before the read, so a read after the exit sees every
                # line the worker wrote
                released = job.stop.is_set()
                exited = job.popen.poll() is not None
                chunk = fh.read()
                pending += chunk
                *lines, pending = pending.split("\n")
                for line in lines:
                    self._forward(job.run_id, line)

                # the worker is gone: its last line may lack a newline
                if exited:
                    self._forward(job.run_id, pending)
                    return
                if released:
                    return
                if not chunk:
                    time.sleep(0.2)

    def _forward(self, run_id: int, line: str) -> None:
        line = line.strip()
        if not line:
            return
        try:
            payload = json.loads(line)
        except json.JSONDecodeError:
            log.debug("run %d: not an event: %s", run_id, line[:200])
            return
        if isinstance(payload, dict):
            if payload.get("event") == "finished":
                job = self.jobs.get(run_id)
                if job is not None:
                    job.ended.set()
            self.event.emit(run_id, payload)


def is_worker_of(pid: int, run_id: int) -> bool:
    """Whether process ``pid`` is ``main.py`` training run ``run_id``: a ``worker`` or
    ``resume`` with ``--run ID``, or a ``train`` (which has no id on its command
    line). Without /proc (macOS) the command line cannot be read and the recorded
    pid is trusted."""
    if not Path("/proc/self/cmdline").exists():
        return True
    try:
        raw = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except OSError:
        return False
    args = [arg for arg in raw.decode(errors="replace").split("\0") if arg]
    if not any(Path(arg).name == "main.py" for arg in args):
        return False
    ours = f"--run={int(run_id)}" in args or any(
        a == "--run" and b == str(int(run_id)) for a, b in zip(args, args[1:])
    )
    return ours or "train" in args
