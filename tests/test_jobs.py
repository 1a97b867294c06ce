"""The window's side of worker processes: following events to the end, cancelling
only a process that is still the run's worker, and opening a store that cannot be
opened. No training happens here; stand-in processes play the workers."""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import threading

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings  # noqa: E402

from app.gui import dialogs  # noqa: E402
from app.gui.jobs import Job, WorkerJobs, is_worker_of  # noqa: E402

SLEEPER = "import time; print('ready', flush=True); time.sleep(60)"


@pytest.fixture
def jobs(qapp):
    jobs = WorkerJobs(store=None)
    yield jobs
    jobs.release()


@pytest.fixture
def processes():
    """Start stand-ins (``python -c SLEEPER ARGS...``); all are killed after."""
    started: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        popen = subprocess.Popen(
            [sys.executable, "-c", SLEEPER, *args], stdout=subprocess.PIPE, text=True
        )
        started.append(popen)
        # its command line is readable once it runs
        assert popen.stdout.readline() == "ready\n"
        return popen

    yield start
    for popen in started:
        if popen.poll() is None:
            popen.kill()
        popen.wait(timeout=10)
        popen.stdout.close()


class EndingPopen:
    """A worker that writes its last events, the last without a newline, at the
    moment it is first asked whether it is alive, and is then gone."""

    def __init__(self, events, lines):
        self.events, self.lines, self.returncode = events, lines, None

    def poll(self):
        if self.returncode is None:
            with open(self.events, "a") as fh:
                fh.write("\n".join(self.lines))
            self.returncode = 0
        return self.returncode


def test_follow_forwards_the_events_written_as_the_worker_exits(jobs, tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"event": "started"}) + "\n")
    last = [{"event": "valid", "epoch": 2}, {"event": "finished", "status": "x"}]
    popen = EndingPopen(events, [json.dumps(e) for e in last])
    job = Job(7, popen, events, tmp_path / "worker.err")
    received = []
    jobs.event.connect(lambda run_id, payload: received.append((run_id, payload)))

    jobs._follow(job, offset=0)

    assert [p["event"] for _, p in received] == ["started", "valid", "finished"]
    assert {run_id for run_id, _ in received} == {7}


def test_cancel_signals_a_live_worker_of_the_run(jobs, processes):
    worker = processes("main.py", "--db", "x.db", "worker", "--run", "12")
    assert is_worker_of(worker.pid, 12)
    assert jobs.cancel(12, worker.pid, socket.gethostname())
    assert worker.wait(timeout=10) == -signal.SIGTERM


def test_cancel_leaves_a_worker_on_another_host_alone(jobs, processes):
    worker = processes("main.py", "worker", "--run", "12")
    assert not jobs.cancel(12, worker.pid, "another-host")
    assert worker.poll() is None


@pytest.mark.parametrize(
    "args",
    [(), ("main.py", "worker", "--run", "13"), ("other.py", "--run", "12")],
    ids=["not a worker", "another run", "not main.py"],
)
def test_cancel_leaves_a_reused_pid_alone(jobs, processes, args):
    stranger = processes(*args)
    assert not jobs.cancel(12, stranger.pid, socket.gethostname())
    assert stranger.poll() is None


def test_launch_shows_a_bad_store_in_a_dialog(qapp, tmp_path, monkeypatch):
    from app.gui import settings, theme
    from app.gui.launch import launch

    shown = []
    monkeypatch.setattr(dialogs, "show_error", lambda _p, t, m: shown.append((t, m)))
    # neither the user's settings nor this test session's look are touched
    ini = str(tmp_path / "gui.ini")
    real = settings.Settings
    monkeypatch.setattr(
        settings,
        "Settings",
        lambda: real(QSettings(ini, QSettings.Format.IniFormat)),
    )
    monkeypatch.setattr(theme, "apply_fusion", lambda _app: None)
    monkeypatch.setattr(theme, "Theme", lambda *_: None)
    bad = tmp_path / "x.db"
    bad.write_bytes(b"not a database\n" * 100)

    assert launch(argparse.Namespace(db=str(bad))) == 1
    [(title, message)] = shown
    assert title == "Cannot open the run store"
    assert message.startswith(f"{bad}: cannot be read as a run store")


def test_follow_stops_when_released(jobs, tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text("")

    class Alive:
        def poll(self):
            return None

    job = Job(3, Alive(), events, tmp_path / "worker.err")
    follower = threading.Thread(target=jobs._follow, args=(job, 0))
    follower.start()
    job.stop.set()
    follower.join(timeout=5)
    assert not follower.is_alive()


def test_no_display_is_said_before_qt_aborts(monkeypatch):
    from app.gui import launch

    nothing = launch.display_problem({}, "linux")
    assert "no display" in nothing and "xvfb-run" in nothing
    # a platform the user chose, another system, or Wayland: Qt is left to it
    assert launch.display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert launch.display_problem({}, "darwin") is None
    assert launch.display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None

    # X11 without the libraries Qt's xcb plugin loads: name the packages
    monkeypatch.setattr(launch.ctypes.util, "find_library", lambda name: None)
    missing = launch.display_problem({"DISPLAY": ":0"}, "linux")
    assert "libxcb-icccm4" in missing and "libxcb-keysyms1" in missing
    monkeypatch.setattr(launch.ctypes.util, "find_library", lambda name: f"lib{name}")
    assert launch.display_problem({"DISPLAY": ":0"}, "linux") is None


def test_the_command_line_says_no_display_with_exit_2(tmp_path):
    import os

    from tests.conftest import ROOT

    env = {
        k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")
    }
    env.pop("QT_QPA_PLATFORM", None)
    done = subprocess.run(
        [sys.executable, "main.py", "--db", str(tmp_path / "runs.db")],
        cwd=str(ROOT),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert (
        done.stderr.startswith("error: no display") and "Traceback" not in done.stderr
    )


class FakeJobs(WorkerJobs):
    """Records launches instead of starting processes; runs end when told."""

    def __init__(self):
        super().__init__(store=None, threads=1)
        self.watch.stop()
        self.started: list[tuple[int, bool]] = []
        self.alive: set[int] = set()
        self.refuse: set[int] = set()

    def launch(self, run_id: int, resume: bool = False):
        if run_id in self.refuse:
            raise OSError("no such executable")
        self.started.append((run_id, resume))
        self.alive.add(run_id)

    def running(self) -> list[int]:
        return sorted(self.alive)

    def is_running(self, run_id: int) -> bool:
        return run_id in self.alive

    def end(self, run_id: int) -> None:
        self.alive.discard(run_id)
        self.exited.emit(run_id, 0)


def test_the_queue_keeps_to_its_limit_and_starts_the_next_when_one_ends(qapp):
    from app.gui.run_queue import RunQueue

    jobs = FakeJobs()
    queue = RunQueue(jobs, limit=2)
    failed = []
    queue.failed.connect(lambda run_id, why: failed.append((run_id, why)))
    assert [queue.submit(i) for i in (1, 2, 3, 4)] == [True, True, False, False]
    assert jobs.running() == [1, 2] and queue.waiting_ids() == [3, 4]
    assert queue.submit(3) is False and queue.waiting_ids() == [3, 4]  # no double

    # a withdrawn run never starts; an ended one frees its slot for the next
    assert queue.withdraw(4) and not queue.withdraw(4)
    jobs.end(1)
    assert jobs.running() == [2, 3] and queue.waiting_ids() == []

    # a resume waits like a new run, and starts as a resume
    queue.submit(7, resume=True)
    jobs.end(2)
    assert jobs.started[-1] == (7, True)

    # a worker that cannot start is reported, and the queue moves on
    jobs.refuse.add(8)
    queue.submit(8)
    queue.submit(9)
    jobs.end(3)
    assert failed == [(8, "no such executable")] and jobs.running() == [7, 9]

    # a higher limit starts waiting runs at once
    queue.submit(10)
    assert queue.waiting_ids() == [10]
    queue.set_limit(3)
    assert jobs.running() == [7, 9, 10]
    queue.timer.stop()
    jobs.release()
