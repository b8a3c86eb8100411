"""The demo's per-session files, without Gradio: a folder per browser session (Gradio's session hash) under the run
folder, a `run-*` folder per request in it (the MP4s, GIFs and PNGs it serves), and the session's flag files.

The flags are files, not memory, because a second event of the same session (Stop, the tab closing) must reach a
story that, on ZeroGPU, runs in another process: QUEUED (Generate pressed, waiting for a slot), RUNNING, and STOP
(which `stories.generate_story` checks between windows). Runs older than an hour are removed as new ones start.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

KEEP_RUNS_S = 3600
QUEUED, RUNNING, STOP = "QUEUED", "RUNNING", "STOP"


def default_runs_dir() -> Path:
    """<temp>/phenaki-demo/<pid>: one folder a server process, so two servers on one machine never share one."""
    return Path(tempfile.gettempdir()) / "phenaki-demo" / str(os.getpid())


class Sessions:
    """The folders under `root`: `folder(request)` for a session, `new_run(request)` for a request."""

    def __init__(self, root: str | os.PathLike, keep_s: float = KEEP_RUNS_S):
        self.root = Path(root)
        self.keep_s = keep_s

    def folder(self, request, create: bool = True) -> Path:
        """The session's folder; a request without a session (a direct call) shares one named 'anonymous'."""
        session = getattr(request, "session_hash", None) or "anonymous"
        folder = self.root / "".join(c for c in session if c.isalnum() or c in "-_")[:64]
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        return folder

    def new_run(self, request) -> Path:
        """A fresh `run-*` folder for this request (old runs of every session are removed first)."""
        self.remove_old_runs()
        return Path(tempfile.mkdtemp(prefix="run-", dir=self.folder(request)))

    def remove_old_runs(self) -> None:
        cutoff = time.time() - self.keep_s
        for run in self.root.glob("*/run-*"):
            try:
                if run.stat().st_mtime < cutoff:
                    shutil.rmtree(run, ignore_errors=True)
            except OSError:  # removed by another request meanwhile
                pass

    def busy(self, request) -> bool:
        """Whether the session has a story queued or running (what Stop and closing the tab act on)."""
        folder = self.folder(request, create=False)
        return (folder / RUNNING).exists() or (folder / QUEUED).exists()


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def unlink(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
