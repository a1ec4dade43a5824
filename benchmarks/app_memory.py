"""Peak memory of the Streamlit app process segmenting 2048x2048 uploads, first from one
browser session, then from 4 sessions at once (each must finish without an error), then one
6000x6000 upload (segmented block by block), then a long-lived app: one process through
those images and 12 more sessions one after another, each uploading an image of another size;
and the memory the app still holds once those sessions have ended.

    python -m benchmarks.app_memory [--sessions 4] [--size 2048] [--large 6000] [--varied 12]

Starts `streamlit run app.py` on a free local port and drives Debian's Chromium with
Playwright. Peak RSS is the kernel's high-water mark (VmHWM) of the server process.
"""
from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from PIL import Image

from nuclei_app.config import SAMPLES_DIR
from nuclei_app.imageio import read_image, to_uint8

from .latency import make_image

PROJECT = Path(__file__).resolve().parents[1]
TARGET_GB = 1.5
LARGE_TARGET_GB = 2.0
IDLE_TARGET_GB = 1.0
SESSION_END_WAIT_S = 90  # closed sessions are dropped after 60 s (config.toml); trim runs every 15 s


# A long-lived app sees images of many sizes: the sizes of the varied run (DSB2018's own and
# common camera formats), each a session of its own in one app process.
VARIED_SIZES = ((256, 320), (360, 360), (520, 696), (603, 1272), (1024, 1024), (777, 901), (1040, 1388),
                (512, 640), (1500, 1100), (1200, 1600), (2000, 1400), (333, 999))


def make_field(height: int, width: int, folder: Path) -> Path:
    sample = read_image(SAMPLES_DIR / "images" / "fluorescence_dense.png")
    reps = (height // sample.shape[0] + 1, width // sample.shape[1] + 1, 1)
    path = folder / f"field_{height}x{width}.png"
    Image.fromarray(to_uint8(np.tile(sample, reps)[:height, :width])).save(path)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_gb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def start_app(port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                                "--server.headless", "true", "--server.address", "127.0.0.1"],
                               cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(240):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("the app did not start")


def segment_in_browser(browser, url: str, image: Path, results: list, index: int) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    started = time.time()
    try:
        page.goto(url)
        page.get_by_text("Upload images or tick a sample").wait_for(timeout=180_000)
        page.locator('input[type="file"]').first.set_input_files(str(image))
        metric = page.locator('[data-testid="stMetric"]').filter(has_text="Nuclei").locator('[data-testid="stMetricValue"]')
        metric.wait_for(timeout=600_000)
        errors = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').count()
        results[index] = (int(metric.inner_text()), errors, time.time() - started)
    except Exception as error:  # noqa: BLE001 - a failed session is a result to print
        results[index] = (None, str(error).splitlines()[0], time.time() - started)
    finally:
        page.close()


def _session_thread(url: str, image: Path, results: list, index: int, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        segment_in_browser(browser, url, image, results, index)
        browser.close()


@dataclass
class Scenario:
    label: str
    waves: list[list[Path]]  # one after another; a wave's sessions at once, one image each
    target: str


def run_sessions(url: str, images: list[Path]) -> list:
    results = [None] * len(images)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    threads = [threading.Thread(target=_session_thread, args=(url, image, results, i, chromium))
               for i, image in enumerate(images)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def scenarios(args, folder: Path) -> list[Scenario]:
    image = make_image(args.size, folder)
    runs = [Scenario(f"1 session(s), {args.size}x{args.size} upload", [[image]], f"target <= {TARGET_GB}"),
            Scenario(f"{args.sessions} session(s), {args.size}x{args.size} upload", [[image] * args.sessions],
                     "target: bounded, no session errors")]
    if args.large:
        runs.append(Scenario(f"1 session(s), {args.large}x{args.large} upload",
                             [[make_image(args.large, folder)]], f"target <= {LARGE_TARGET_GB}"))
    if args.varied:
        # The long-lived app also takes the runs above's images (the block-wise one included).
        sizes = VARIED_SIZES[:args.varied]
        earlier = [image] + [wave[0] for run in runs[2:] for wave in run.waves]
        runs.append(Scenario(f"{len(earlier) + len(sizes)} sessions one after another in one app: the images above, "
                             f"then {', '.join(f'{h}x{w}' for h, w in sizes)}",
                             [[path] for path in earlier] + [[make_field(h, w, folder)] for h, w in sizes],
                             f"target <= {LARGE_TARGET_GB if args.large else TARGET_GB}"))
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.app_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--large", type=int, default=6000, help="side of the block-wise upload (0: skip)")
    parser.add_argument("--varied", type=int, default=len(VARIED_SIZES),
                        help=f"sessions of the long-lived run, at most {len(VARIED_SIZES)} (0: skip)")
    parser.add_argument("--only-varied", action="store_true", help="run the long-lived app only")
    args = parser.parse_args(argv)
    if args.only_varied and not args.varied:
        parser.error("--only-varied needs --varied 1 or more")
    with tempfile.TemporaryDirectory() as folder:
        runs = scenarios(args, Path(folder))
        for scenario in runs[-1:] if args.only_varied else runs:
            port = free_port()
            app = start_app(port)
            try:
                idle = rss_gb(app.pid, "VmRSS")
                started = time.time()
                results = [result for wave in scenario.waves for result in run_sessions(f"http://127.0.0.1:{port}", wave)]
                peak = rss_gb(app.pid, "VmHWM")
                wall = time.time() - started
                time.sleep(SESSION_END_WAIT_S)
                after = rss_gb(app.pid, "VmRSS")
                print(f"{scenario.label}: app idle RSS {idle:.2f} GB, "
                      f"peak RSS {peak:.2f} GB ({scenario.target}), wall {wall:.1f} s; {SESSION_END_WAIT_S} s after the sessions "
                      f"ended: RSS {after:.2f} GB (target <= {IDLE_TARGET_GB})")
                for index, (count, errors, seconds) in enumerate(results):
                    print(f"  session {index + 1}: nuclei {count}, errors on page {errors}, {seconds:.1f} s")
            finally:
                app.terminate()
                app.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
