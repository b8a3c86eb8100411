"""The demo in the browser: how long a person waits after pressing Generate, and whether the Live tab's story
keeps ahead of playback (`bench/browser_live.py`).

Starts `app.py` as a user would (the bundled default model, default threads, on the CPU here), opens it in
Debian's headless Chromium (driven by Playwright's Python package; no browser download), and presses Generate on
the default timeline with the default settings several times. Each press is timed in the page, from the click
event to: the story started (status "Starting"), the first window's status arrived, its frames picture loaded
(`#frames img`: the first frames a person sees, what the 3-second target is about), and the live preview holding
that window's clip (`#live video`, readyState >= 2: it comes after the picture, once the clip is encoded). The
story then runs to its end, as a person would watch it, before the next press (Stop would leave its message's
countdown animating through the next press). The first press after the server starts is reported
apart from the later ones. Also recorded: the CPU seconds that the server and Chromium used over all presses (both
share this machine's cores, as they do for someone running the demo locally). After the presses, on the same page
and server, the Live tab (`live_playback`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.browser_live import live_playback

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("PHENAKI_TEST_CHROMIUM", "/usr/bin/chromium")
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Installed before each press. The click listener runs in the capture phase, before Gradio's own handler. The
# frames of the previous story count only after the page cleared them (Generate clears the last result first).
# It runs at every change of the page, so it reads text with textContent: innerText lays the page out each time
# (70-160 ms of Chromium's main thread a press, measured, on the cores the server needs).
WATCH = """() => {
  const t = window.__press = {click: null, cleared: false, started: null, window: null, frames: null, live: null,
                              done: null, picture: null};
  document.querySelector('#generate').addEventListener('click', () => { t.click = performance.now(); },
                                                       {capture: true, once: true});
  const check = () => {
    if (t.click === null) return;
    const now = performance.now() - t.click;
    const img = document.querySelector('#frames img'), video = document.querySelector('#live video');
    if (!t.cleared) { if (img) return; t.cleared = true; }
    if (t.frames === null && img && img.complete && img.naturalWidth > 0) t.frames = now;
    const picture = document.querySelector('#emerging img');  // the first window's emerging picture, shown
    if (t.picture === null && picture && picture.complete && picture.naturalWidth > 0) t.picture = now;
    if (t.live === null && t.frames !== null && video && video.readyState >= 2) t.live = now;
    const status = document.querySelector('#status').textContent;
    if (t.started === null && /Starting/.test(status)) t.started = now;
    if (t.window === null && /Generating/.test(status)) t.window = now;
    if (t.done === null && /Done|Stopped|Failed/.test(status)) t.done = now;
  };
  new MutationObserver(check).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                      characterData: true});
  for (const name of ['load', 'loadeddata']) document.addEventListener(name, check, true);
  t.timer = setInterval(check, 50);  // a safety net: the events above catch every change
}"""


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pids: set[int]) -> float:
    """User + system CPU seconds of these processes (children included once they have been waited for)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def _chromium_pids() -> set[int]:
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if "chrom" in stat.read_text().split(")", 1)[0]:
                pids.add(int(stat.parent.name))
        except (OSError, ValueError):
            pass
    return pids


def _start_app(port: int, log_path: Path, live_max_seconds: int | None = None) -> subprocess.Popen:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PHENAKI_MODEL", "PHENAKI_REVISION", "PHENAKI_DEVICE", "OMP_NUM_THREADS")
    }
    env.update(
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_OFFLINE="1",
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        PYTHONUNBUFFERED="1",
    )
    if live_max_seconds:
        env["PHENAKI_LIVE_MAX_SECONDS"] = str(live_max_seconds)
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "app.py")],
        cwd=REPO,
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/gradio_api/info", timeout=2):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise TimeoutError(f"app.py did not answer within 180 s:\n{log_path.read_text()[-4000:]}")


def demo_in_browser(presses: int, live_seconds: float, log) -> dict:
    """Presses Generate `presses` times (0, or at least 2), timing the first frames of each; then watches the Live
    tab's story for `live_seconds` (0: not at all). One server, one page."""
    if presses == 1 or presses < 0:
        raise ValueError(f"presses must be 0 or >= 2 (the first press is reported apart), got {presses}")
    if not Path(CHROMIUM).exists():
        return dict(skipped=f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    port = _free_port()
    log_path = Path(tempfile.mkdtemp(prefix="phenaki-bench-app-")) / "server.log"
    # the app's live stories end at 600 s of video by default: more when asked to watch longer
    server = _start_app(port, log_path, int(live_seconds) + 120 if live_seconds + 120 > 600 else None)
    out = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#generate", timeout=60000)
            time.sleep(2)  # the page settles (fonts, first layout) before the first press
            if presses:
                out = generate_presses(page, presses, server.pid, log)
            if live_seconds:
                cpu_start = _cpu_seconds({server.pid}), _cpu_seconds(_chromium_pids())
                out["live"] = live_playback(page, live_seconds, log)
                out["live"]["cpu_s"] = dict(
                    server=_cpu_seconds({server.pid}) - cpu_start[0],
                    chromium=_cpu_seconds(_chromium_pids()) - cpu_start[1],
                )
            out["chromium"] = browser.version
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # app.py and any ffmpeg it started
        server.wait(30)
    shutil.rmtree(log_path.parent, ignore_errors=True)
    return out


def generate_presses(page, presses: int, server_pid: int, log) -> dict:
    """Presses Generate `presses` times (at least 2); the seconds from each click to the first frames."""
    cpu_start = _cpu_seconds({server_pid}), _cpu_seconds(_chromium_pids())
    runs = []
    for i in range(presses):
        page.evaluate(WATCH)
        page.click("#generate")
        page.wait_for_function("() => window.__press.live !== null", timeout=120000)
        page.wait_for_function("() => window.__press.done !== null", timeout=120000)
        press = page.evaluate("() => { clearInterval(window.__press.timer); return window.__press; }")
        # a status the page showed too briefly to be seen stays None; the frames and the clip were waited for
        runs.append(
            {
                f"{k}_s": None if press[k] is None else press[k] / 1000
                for k in ("started", "picture", "window", "frames", "live")
            }
        )
        log(
            f"   press {i + 1}/{presses}, seconds after the click: story started "
            f"{seconds(runs[-1]['started_s'])}, emerging picture {seconds(runs[-1]['picture_s'])}, "
            f"first window's status {seconds(runs[-1]['window_s'])}, "
            f"frames picture {seconds(runs[-1]['frames_s'])}, live preview {seconds(runs[-1]['live_s'])}"
        )
        time.sleep(1)
    cpu = dict(server=_cpu_seconds({server_pid}) - cpu_start[0], chromium=_cpu_seconds(_chromium_pids()) - cpu_start[1])
    later = [r["frames_s"] for r in runs[1:]]
    log(
        f"   first press {runs[0]['frames_s']:.2f} s, later ones median {statistics.median(later):.2f} s "
        f"(max {max(later):.2f} s)"
    )
    return dict(
        presses=runs,
        first_s=runs[0]["frames_s"],
        later_median_s=statistics.median(later),
        later_max_s=max(later),
        live_median_s=statistics.median(r["live_s"] for r in runs),
        cpu_s=cpu,
    )
