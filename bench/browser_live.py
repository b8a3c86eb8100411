"""The Live tab in the browser: does live generation stay ahead of playback? (issue 22)

On the page `bench/browser.py` opened: the Live tab, Start with its default prompt and settings, timed in the page
from the click to the first frames playing (the `#live-video video` element's first frame presented, by
`requestVideoFrameCallback`, or its `currentTime` above 0, whichever comes first). Then playback is watched for
`seconds` of wall-clock time: a stall is a `waiting` or `stalled` event of the <video> element, or its
`currentTime` not advancing for more than STALL_MS while not ended (paused or not: nobody pauses it here, so a
pause is the player giving up). Stalls before the first frames play do not count (the first window is being made);
the target is none after. Then Stop, and the status line's count of frames made and played is kept.
"""

from __future__ import annotations

import re
import time

STALL_MS = 500  # a frame lasts 125 ms at 8 fps: half a second without progress is a visible stop
PLAYING_TIMEOUT_S = 120

# Installed before Start is pressed; polled every 100 ms (and the video element hooked whenever the page replaces it).
WATCH = """(stallMs) => {
  const t = window.__live = {click: null, playing: null, stalls: [], events: [], lastTime: 0, lastAdvance: null,
                             stallStart: null, played: 0, paused: null, ended: null, elements: 0};
  document.querySelector('#live-start').addEventListener('click', () => { t.click = performance.now(); },
                                                         {capture: true, once: true});
  const since = () => (performance.now() - t.click) / 1000;
  const started = () => { if (t.playing === null && t.click !== null) t.playing = since(); };
  const hook = (v) => {
    if (v.__benchLive) return;
    v.__benchLive = true;
    t.elements += 1;
    for (const name of ['waiting', 'stalled']) v.addEventListener(name, () => {
      if (t.playing !== null) t.events.push({event: name, at: since(), time: v.currentTime});
    });
    if (v.requestVideoFrameCallback) v.requestVideoFrameCallback(started);
  };
  const tick = () => {
    if (t.click === null) return;
    const v = document.querySelector('#live-video video');
    if (!v) return;
    hook(v);
    const now = performance.now();
    if (t.playing === null && v.currentTime > 0) started();
    if (t.playing === null) return;
    if (t.lastAdvance === null) { t.lastAdvance = now; t.lastTime = v.currentTime; }
    if (v.currentTime > t.lastTime) {
      if (t.stallStart !== null) {
        t.stalls.push({at: (t.stallStart - t.click) / 1000, s: (now - t.stallStart) / 1000, paused: v.paused});
        t.stallStart = null;
      }
      t.lastTime = v.currentTime; t.lastAdvance = now;
    } else if (!v.ended && t.stallStart === null && now - t.lastAdvance > stallMs) {
      t.stallStart = t.lastAdvance;
    }
    t.played = v.currentTime; t.paused = v.paused; t.ended = v.ended;
  };
  t.timer = setInterval(tick, 100);
}"""

FINISH = """() => { const t = window.__live; clearInterval(t.timer);
  if (t.stallStart !== null) t.stalls.push({at: (t.stallStart - t.click) / 1000,
                                            s: (performance.now() - t.stallStart) / 1000, open: true});
  return t; }"""


def live_playback(page, seconds: float, log) -> dict:
    """Start the Live tab's story, time its first frames, watch playback `seconds` for stalls, Stop."""
    page.get_by_role("tab", name="Live").click()
    page.wait_for_selector("#live-start", state="visible", timeout=30000)
    prompt = page.locator("#live-prompt textarea, #live-prompt input").first.input_value()
    page.evaluate(WATCH, STALL_MS)
    page.click("#live-start")
    page.wait_for_function("() => window.__live.playing !== null", timeout=PLAYING_TIMEOUT_S * 1000)
    first = page.evaluate("() => window.__live.playing")
    log(f"   live: first frames play {first:.2f} s after Start (prompt {prompt!r}); watching {seconds:g} s")
    watched = time.monotonic()
    while (left := seconds - (time.monotonic() - watched)) > 0:
        page.wait_for_timeout(min(30.0, left) * 1000)
        t = page.evaluate("() => window.__live")
        log(
            f"   live: {time.monotonic() - watched:.0f} s watched, played to {t['played']:.1f} s, stalls "
            f"{len(t['stalls']) + (t['stallStart'] is not None)}, waiting/stalled events {len(t['events'])}"
        )
    t = page.evaluate(FINISH)
    status_before_stop = page.inner_text("#live-status")
    page.click("#live-stop")
    page.wait_for_function(
        "() => /Stopped|Ended|Reached|Failed/.test(document.querySelector('#live-status').textContent)", timeout=60000
    )
    status = page.inner_text("#live-status")
    made = re.search(r"(\d+) frames made", status)
    speed = re.search(r"([\d.]+)× real time", status_before_stop)
    return dict(
        prompt=prompt,
        first_play_s=first,
        watched_s=seconds,
        played_s=t["played"],
        stalls=t["stalls"],
        events=t["events"],
        video_elements=t["elements"],
        ended=t["ended"],
        frames_made=int(made.group(1)) if made else None,
        speed=float(speed.group(1)) if speed else None,
        status=" ".join(status.split()),
    )


def live_summary(live: dict) -> str:
    if live.get("skipped"):
        return f"not measured: {live['skipped']}"
    stalls, events = live["stalls"], live["events"]
    longest = max((s["s"] for s in stalls), default=0.0)
    return (
        f"first frames play {live['first_play_s']:.2f} s after Start; over {live['watched_s']:g} s watched, "
        f"played to {live['played_s']:.1f} s with {len(stalls)} stalls (longest {longest:.1f} s) and "
        f"{len(events)} waiting/stalled events after the first frames"
    )
