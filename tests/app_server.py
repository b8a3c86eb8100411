"""Helpers for the demo tests: a tiny random model saved to a folder, and `python app.py` started on a free local
port with that model (or, for the one test of the bundled model, without PHENAKI_MODEL), with an
outbound-connection trap as its HTTP(S) proxy so that any call to an outside server is recorded. One server on the
tiny model is shared by the whole test session (started on first use)."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE_ENV = dict(
    GRADIO_ANALYTICS_ENABLED="False",
    HF_HUB_DISABLE_TELEMETRY="1",
    HF_HUB_OFFLINE="1",
    HF_HUB_DISABLE_XET="1",
    GRADIO_SERVER_NAME="127.0.0.1",
    PYTHONUNBUFFERED="1",
    OMP_NUM_THREADS="1",
)
_cache: dict[str, object] = {}


def app_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "PHENAKI_MODEL", "PHENAKI_REVISION")}
    env.update(BASE_ENV)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_model_dir(critic: bool = True) -> Path:
    """A tiny random Phenaki (32x32 frames) saved once per test session, with shapes world 1's vocabulary (as the
    bundled model: the demo shows its words and notes unseen ones)."""
    key = f"model-{critic}"
    if key not in _cache:
        import torch

        from phenaki import Phenaki
        from phenaki.shapes.vocabulary import world_vocabulary
        from phenaki.training.presets import preset

        config = preset("tiny") | {"vocabulary": world_vocabulary("shapes")}
        if not critic:
            config["critic"] = None
        torch.manual_seed(0)
        folder = Path(tempfile.mkdtemp(prefix="phenaki-tiny-"))
        Phenaki.from_config(config).save_pretrained(folder)
        atexit.register(shutil.rmtree, folder, True)
        _cache[key] = folder
    return _cache[key]


class FailsAfterFirstWindow:
    """The real model, whose story breaks after its first window (as a GPU running out of memory would), whether
    made by `stream` or window by window (`story_window`, as phenaki.story_resume.cached_stream makes it)."""

    def __init__(self, model):
        self._model = model
        self._windows = 0

    def story_window(self, *args, **kwargs):
        self._windows += 1
        if self._windows == 2:
            raise RuntimeError("CUDA out of memory (simulated)")
        return self._model.story_window(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._model, name)

    def stream(self, timeline, **kwargs):
        for i, chunk in enumerate(self._model.stream(timeline, **kwargs)):
            if i == 1:
                raise RuntimeError("CUDA out of memory (simulated)")
            yield chunk


class OutboundTrap:
    """A local 'proxy' that answers every request with 403 and remembers its first line (CONNECT host, GET url)."""

    def __init__(self):
        self.hits: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    data = conn.recv(4096)
                    self.hits.append(data.split(b"\r\n", 1)[0].decode("latin-1"))
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self):
        self.sock.close()


def crashes(log: str) -> list[str]:
    """The tracebacks in a server log, but for a client going away in the middle of an upload (Starlette's
    ClientDisconnect, which uvicorn logs as an exception: a browser page closed while its image editor was still
    sending a layer, as CI saw once). Each runs from its "Traceback (most recent call last)" line to the first
    line at column 0, its exception."""
    found, current = [], None
    for line in log.splitlines():
        if "Traceback (most recent call last)" in line:
            current = [line]
        elif current is not None:
            current.append(line)
            if line and not line[0].isspace():
                found.append("\n".join(current))
                current = None
    if current is not None:
        found.append("\n".join(current))  # the log ends inside it
    return [t for t in found if not t.rsplit("\n", 1)[-1].startswith("starlette.requests.ClientDisconnect")]


class AppServer:
    """`python app.py` on a free port; `url`, `log()`, `runs()` (the per-request folders it made), `stop()`.
    `model_dir` None: no PHENAKI_MODEL, so the app serves the bundled weights/ (as `bash scripts/demo.sh` does)."""

    def __init__(self, model_dir: str | os.PathLike | None, timeout: float = 120, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.tmp = Path(tempfile.mkdtemp(prefix="phenaki-app-"))
        self.trap = OutboundTrap()
        proxy = self.trap.url
        model = {} if model_dir is None else {"PHENAKI_MODEL": str(model_dir)}
        self.env = app_env(
            **model,
            GRADIO_SERVER_PORT=str(self.port),
            TMPDIR=str(self.tmp),
            HTTP_PROXY=proxy,
            HTTPS_PROXY=proxy,
            ALL_PROXY=proxy,
            http_proxy=proxy,
            https_proxy=proxy,
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
            **env,
        )
        self.log_path = self.tmp / "server.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py")],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait(self, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "gradio_api/info", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"app.py did not answer within {timeout} s:\n{self.log()}")

    def alive(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "gradio_api/info", timeout=5) as reply:
                return reply.status == 200 and self.proc.poll() is None
        except OSError:
            return False

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-20000:]

    def crashes(self) -> list[str]:
        """The tracebacks in the server's log (see `crashes`)."""
        return crashes(self.log())

    def runs(self) -> list[Path]:
        return sorted(self.tmp.glob("phenaki-demo/*/*/run-*"))

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # our own process group (start_new_session)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()
        self.trap.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def shared_server() -> AppServer:
    """The session's server on the tiny model (concurrency 1, default queue), started on first use."""
    if "server" not in _cache:
        server = AppServer(tiny_model_dir())
        atexit.register(server.stop)
        _cache["server"] = server
    return _cache["server"]


BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHROMIUM = os.environ.get("PHENAKI_TEST_CHROMIUM", "/usr/bin/chromium")


def client(server):
    from gradio_client import Client

    return Client(server.url, verbose=False, download_files=True)
