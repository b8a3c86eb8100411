"""The Live tab's reliability: a story's files stay under PHENAKI_LIVE_MAX_MB; a closed tab's flags; and 8 clients
starting live stories at once on the real server (`python app.py`, driven with gradio_client), each running,
waiting with its position or refused, with nothing left running after them. A long session's memory is measured by
bench/live_soak.py; Stop on a story waiting behind another page's is in tests/test_browser.py."""

from __future__ import annotations

import time

import pytest
from app_server import AppServer, client, crashes, tiny_model_dir
from test_live_app import RIGHT, UP, FakeClock, Timed, play, read_frames, windows

from phenaki import Phenaki
from phenaki.demo import live_session as live


@pytest.fixture(scope="module")
def model():
    return Phenaki.from_pretrained(tiny_model_dir(), device="cpu")


def test_a_long_story_s_files_stay_under_the_disk_cap_and_it_ends_before_passing_it(model, tmp_path):
    """PHENAKI_LIVE_MAX_MB: the clips rotate and the story ends while its files still fit, with every frame made in
    its MP4; without the cap it would have gone on to its 60 s (the random model's frames are noise: big files)."""
    clock, run, cap = FakeClock(), tmp_path / "run", 2_000_000
    sizes = []

    def measure(update, control):
        sizes.append(live.files_size(run))
        assert len(list(run.glob("window_*.mp4"))) <= live.KEEP_CLIPS

    fast = Timed(model, clock, seconds=0.1)
    control = live.LiveControl(tmp_path / "s")
    updates = play(fast, control, run, clock, on_update=measure, max_bytes=cap, max_seconds=60, display_size=128)
    final, made = updates[-1], windows(updates)
    assert final.ended == "disk" and final.error is None and len(made) >= 12, (final.ended, len(made))
    assert max(sizes) <= cap and live.files_size(run) <= cap, (max(sizes), live.files_size(run))
    assert live.files_size(run) > cap / 2  # it used most of what it was allowed
    assert len(read_frames(final.video)) == final.frames_made == 17 + 12 * (len(made) - 1)


def test_leaving_stops_a_running_story_and_clears_a_queued_one(tmp_path):
    """The tab closed: a running story gets STOP (it ends at its next window); a queued one, which Gradio drops
    from its queue, leaves no flags that a later story of the session could take for its own."""
    running, queued = live.LiveControl(tmp_path / "a"), live.LiveControl(tmp_path / "b")
    assert running.begin()
    queued.queue()
    running.leave()
    queued.leave()
    assert running.running() and running.stop_requested()
    assert not queued.busy() and not list((tmp_path / "b").iterdir())
    live.LiveControl(tmp_path / "c").leave()  # a session that never played: nothing made
    assert not (tmp_path / "c").exists()


def server_children(server) -> list[str]:
    """The commands of the server's child processes (the live stories' MP4 writers are ffmpeg processes)."""
    import psutil

    return [" ".join(p.cmdline()[:1]) for p in psutil.Process(server.proc.pid).children(recursive=True)]


@pytest.mark.server
def test_eight_clients_starting_live_stories_at_once_run_wait_or_are_refused_and_leave_nothing_running():
    """A queue of 3: of 8 clients starting /live at once, one runs at a time, the waiting ones see their position,
    the rest are refused with a message; one waiting client goes away. The server answers throughout, and after
    them: no session's live flags (the registry of queued and running stories), no run folders, no MP4 writer,
    and a fresh /generate runs at once."""
    from gradio_client.utils import QueueError

    server = AppServer(tiny_model_dir(), PHENAKI_QUEUE_SIZE="3", PHENAKI_LIVE_MAX_SECONDS="4")
    try:
        clients = [client(server) for _ in range(8)]
        jobs = [c.submit(RIGHT, 2, 1.0, 0.0, 3.0, i, 1, api_name="/live") for i, c in enumerate(clients)]
        waited, left, deadline = set(), None, time.monotonic() + 240
        while not all(job.done() for i, job in enumerate(jobs) if i != left):
            assert time.monotonic() < deadline, [job.status() for job in jobs]
            for i, job in enumerate(jobs):
                status = job.status()
                if status.code.name == "IN_QUEUE" and status.rank is not None and not job.outputs():
                    waited.add(i)  # waiting, its position known
                    if left is None and status.rank >= 1:
                        left = i  # this one goes away while it waits
                        clients[i].close()
            assert server.alive()
            time.sleep(0.05)
        ran, refused = [], []
        for i, job in enumerate(jobs):
            if i == left:
                continue
            if isinstance(job.exception(), QueueError):
                refused.append(i)
                assert "Queue is full" in str(job.exception()) and not job.outputs()
                continue
            _, status, mp4, _, seed, _ = job.result()  # the last: the emerging picture (None at the end)
            assert "Reached the length limit" in status and len(read_frames(mp4)) == 41 and seed == i, status
            ran.append(i)
        assert len(ran) + len(refused) == 7 and len(refused) >= 3 and len(ran) >= 2, (ran, refused, left)
        assert len(set(ran) - waited) <= 1, (ran, waited)  # all but the first waited with a position
        assert left is not None and left in waited
        # the unload event of the client that left runs in the background, and each story's generator removes its
        # run folder when Gradio asks it for more after its last output (a moment after the client has that output)
        deadline = time.monotonic() + 30
        while list(server.tmp.glob("phenaki-demo/*/*/LIVE_*")) or server.runs():
            assert time.monotonic() < deadline, (list(server.tmp.glob("phenaki-demo/*/*/LIVE_*")), server.runs())
            time.sleep(0.1)
        assert not [c for c in server_children(server) if "ffmpeg" in c]
        started = time.monotonic()
        *_, status, video, mp4, gif, seed, _ = client(server).predict(
            {"headers": ["prompt", "seconds"], "data": [[UP, 1]]}, 2, 1.0, 0.0, 3.0, 1, api_name="/generate"
        )
        assert "Done" in status and len(read_frames(mp4)) == 8 and time.monotonic() - started < 60
        assert server.crashes() == []
    finally:
        server.stop()


def test_the_soak_script_measures_growth_over_the_second_half_and_this_process(tmp_path):
    """bench/live_soak.py's arithmetic on made-up samples (flat, then growing 10% over the second half), and its
    /proc readers on this process (the 10-minute run itself is the lead's, on a quiet machine)."""
    import importlib.util
    import os
    import subprocess
    import sys
    from pathlib import Path
    from types import SimpleNamespace

    path = Path(__file__).resolve().parents[1] / "bench" / "live_soak.py"
    spec = importlib.util.spec_from_file_location("live_soak", path)
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    args = SimpleNamespace(minutes=10)

    def run(rss):
        samples = [
            dict(t=t, rss_mb=rss(t), rss_tree_mb=rss(t) + 60, run_mb=1.0, frames=t * 8) for t in range(0, 600, 5)
        ]
        return soak.summary({"samples": samples, "after_stop": {"run_mb": 0.0, "gradio_cache_mb": 2.0}}, args)

    flat = run(lambda t: 1000.0)
    assert flat["growth_second_half"] == 0 and flat["met"] and flat["run_files_max_mb"] == 1.0
    growing = run(lambda t: 1000.0 + max(0, t - 300) / 3)  # +100 MB from the middle to the end
    assert 0.08 < growing["growth_second_half"] < 0.1 and not growing["met"]
    assert abs(growing["slope_second_half_mb_per_min"] - 20) < 0.1
    assert "**no**" in soak.results_line(growing, "bundled model")
    assert soak.rss_kb(os.getpid()) > 10_000 and soak.rss_kb(2**22 + 7) == 0
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in soak.descendants(os.getpid())
    finally:
        child.kill()
        child.wait()
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.bin").write_bytes(b"x" * 1000)
    assert soak.folder_bytes(tmp_path) == 1000


def test_the_server_log_s_crashes_are_its_tracebacks_but_a_client_leaving_mid_upload():
    """What the server tests call a crash: any traceback in the log, but Starlette's ClientDisconnect (a page closed
    while it was still uploading), which uvicorn logs though the server is not at fault."""
    frame = '  File "x.py", line 1, in f\n    g()'
    left = f"ERROR:    Exception in ASGI application\nTraceback (most recent call last):\n{frame}\n"
    left += "starlette.requests.ClientDisconnect\n"
    ours = f"Traceback (most recent call last):\n{frame}\nKeyError: 'seed'\n"
    group = f"  + Exception Group Traceback (most recent call last):\n  | {frame}\nExceptionGroup: 1 error\n"
    assert crashes("* Running on local URL\n" + left) == []
    assert crashes(left + ours + "INFO: later\n") == [ours.rstrip("\n")]
    assert len(crashes(group)) == 1 and len(crashes(ours[:60])) == 1  # a group; a log that ends inside one
