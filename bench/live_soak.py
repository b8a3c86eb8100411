"""A long live session: does the server's memory stay flat and its disk use bounded?

Starts `app.py` as a user would (the bundled model unless --model, on a free local port, its temporary files in a
folder of its own), plays one live story through gradio_client for --minutes (default 10), steering it every
--steer-every seconds, and samples every --interval seconds: the resident memory (RSS) of the server process and of
it with its children (the story's ffmpeg MP4 writer), the bytes of its run folders (the story's MP4, the player's
latest clips) and of Gradio's cache, and the frames made. Then it stops the story and samples the disk once more
(the run folder goes once Gradio has its copy).

Reported: the growth of the server's RSS over the second half (the median of the samples around the middle against
the median of the last tenth; the target is under 5%), its slope over the second half, and the most disk the
session's files took (against PHENAKI_LIVE_MAX_MB). Written to --out as JSON, with a line for bench/RESULTS.md.

    python bench/live_soak.py                      # 10 minutes, the bundled model (a quiet machine: see README)
    nice -n 19 python bench/live_soak.py --minutes 1 --out /tmp/soak.json   # a check that it runs

The client does not fetch the streamed segments (a browser would): Gradio holds each streamed window in memory for
the session whether or not it is fetched, so the server's memory is the same either way.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from phenaki.sampling import SamplingSettings  # noqa: E402

PROMPTS = [
    "a red circle moves right",
    "the red circle moves up",
    "the red circle moves left",
    "the red circle moves down",
]
MADE = re.compile(r"(\d+) frames made")
TARGET_GROWTH = 0.05


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int) -> int:
    """VmRSS of a process, in kB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc's parent links."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def folder_bytes(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:  # a clip rotated out meanwhile
                pass
    return total


class Server:
    """`python app.py` on a free port with its own TMPDIR (its run folders and Gradio's cache land there)."""

    def __init__(self, model: str | None, live_max_seconds: int, threads: str | None):
        self.tmp = Path(tempfile.mkdtemp(prefix="phenaki-soak-"))
        self.url = f"http://127.0.0.1:{free_port()}/"
        env = {k: v for k, v in os.environ.items() if k not in ("PHENAKI_MODEL", "HF_TOKEN")}
        env.update(
            GRADIO_ANALYTICS_ENABLED="False",
            HF_HUB_OFFLINE="1",
            GRADIO_SERVER_NAME="127.0.0.1",
            GRADIO_SERVER_PORT=self.url.rsplit(":", 1)[1].strip("/"),
            PHENAKI_LIVE_MAX_SECONDS=str(live_max_seconds),
            TMPDIR=str(self.tmp),
            PYTHONUNBUFFERED="1",
        )
        if model:
            env["PHENAKI_MODEL"] = model
        if threads:
            env["PHENAKI_THREADS"] = threads
        self.log = open(self.tmp / "server.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "app.py")],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited: {(self.tmp / 'server.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "gradio_api/info", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError("app.py did not answer")

    def sample(self) -> dict:
        # a child caught between fork and exec shares the server's pages (its RSS reads as the server's): left out
        children = [c for c in descendants(self.proc.pid) if exe(c) not in (None, exe(self.proc.pid))]
        server = rss_kb(self.proc.pid)
        return {
            "rss_mb": server / 1024,
            "rss_tree_mb": (server + sum(rss_kb(c) for c in children)) / 1024,
            "children": len(children),
            "run_mb": folder_bytes(self.tmp / "phenaki-demo") / 1e6,
            "gradio_cache_mb": folder_bytes(self.tmp / "gradio") / 1e6,
        }

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def frames_made(job) -> int:
    for outputs in reversed(job.outputs()):
        if isinstance(outputs[1], str) and (found := MADE.search(outputs[1])):
            return int(found.group(1))
    return 0


def play(server: Server, args) -> dict:
    """One live story for args.minutes, sampled every args.interval seconds; the samples and the story's end."""
    from gradio_client import Client

    client = Client(server.url, verbose=False, download_files=False)
    d = SamplingSettings()  # the page's defaults; /live takes its inputs by position (it is not an MCP tool)
    job = client.submit(
        PROMPTS[0], d.steps, d.temperature, d.critic_strength, d.guidance_scale, 0, d.refine_passes, api_name="/live"
    )
    while not job.outputs():
        if job.done():
            raise RuntimeError(f"the live story did not start: {job.exception()}")
        time.sleep(0.2)
    started, samples, steers = time.monotonic(), [], 0
    duration = args.minutes * 60
    next_sample = next_steer = 0.0
    while (now := time.monotonic() - started) < duration:
        if job.done():
            raise RuntimeError(f"the live story ended early: {job.exception() or job.outputs()[-1][1]}")
        if now >= next_steer and now > 0:
            steers += 1
            client.predict(PROMPTS[steers % len(PROMPTS)], api_name="/steer")
        if now >= next_steer:
            next_steer += args.steer_every
        if now >= next_sample:
            samples.append({"t": round(now, 1), "frames": frames_made(job), **server.sample()})
            print(json.dumps(samples[-1]), flush=True)
            next_sample += args.interval
        time.sleep(0.2)
    client.predict(api_name="/stop_live")
    result = job.result(timeout=120)
    time.sleep(3)  # the story's run folder goes after its last update
    after = server.sample()
    client.close()
    return {
        "samples": samples,
        "final_status": re.sub(r"<[^>]+>", " ", result[1]),
        "after_stop": after,
        "steers": steers,
    }


def summary(run: dict, args) -> dict:
    samples, duration = run["samples"], args.minutes * 60

    def median_rss(low: float, high: float) -> float:
        inside = [s["rss_mb"] for s in samples if low * duration <= s["t"] <= high * duration]
        nearest = min(samples, key=lambda s: abs(s["t"] - (low + high) / 2 * duration))["rss_mb"]
        return statistics.median(inside) if inside else nearest

    mid, end = median_rss(0.45, 0.55), median_rss(0.9, 1.0)
    half = [s for s in samples if s["t"] >= duration / 2]
    slope = statistics.linear_regression([s["t"] for s in half], [s["rss_mb"] for s in half]).slope * 60
    frames = max(s["frames"] for s in samples)
    return {
        "minutes": args.minutes,
        "rss_mid_mb": round(mid, 1),
        "rss_end_mb": round(end, 1),
        "growth_second_half": round((end - mid) / mid, 4),
        "slope_second_half_mb_per_min": round(slope, 2),
        "rss_tree_max_mb": round(max(s["rss_tree_mb"] for s in samples), 1),
        "run_files_max_mb": round(max(s["run_mb"] for s in samples), 2),
        "run_files_after_stop_mb": round(run["after_stop"]["run_mb"], 2),
        "gradio_cache_after_stop_mb": round(run["after_stop"]["gradio_cache_mb"], 2),
        "frames_made": frames,
        "video_seconds": round(frames / 8, 1),
        "met": (end - mid) / mid < TARGET_GROWTH,
    }


def results_line(s: dict, model: str) -> str:
    growth = f"{100 * s['growth_second_half']:+.1f}% ({s['rss_mid_mb']:.0f} -> {s['rss_end_mb']:.0f} MB)"
    disk = f"its files at most {s['run_files_max_mb']:.1f} MB, {s['run_files_after_stop_mb']:.1f} MB after it ended"
    return (
        f"| a {s['minutes']:g}-minute live session ({model}): server memory growth over the second half < 5% | "
        f"{growth}; {disk} | {'yes' if s['met'] else '**no**'} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--steer-every", type=float, default=30.0, help="seconds between steers")
    parser.add_argument("--model", default=None, help="PHENAKI_MODEL (default: the bundled weights/)")
    parser.add_argument("--threads", default=None, help="PHENAKI_THREADS (default: the app's choice)")
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "live_soak.json"))
    args = parser.parse_args(argv)
    server = Server(args.model, live_max_seconds=int(args.minutes * 60) + 300, threads=args.threads)
    try:
        server.wait()
        loaded = server.sample()
        run = play(server, args)
    finally:
        server.stop()
    result = {"summary": summary(run, args), "after_loading": loaded, **run, "model": args.model or "weights/"}
    line = results_line(result["summary"], "bundled model" if args.model is None else args.model)
    result["results_line"] = line
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result["summary"], indent=1))
    print(line)


if __name__ == "__main__":
    main()
