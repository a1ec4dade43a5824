"""Hostile uploads: one browser session drops 20 files at once (many-channel TIFFs, bombs in
several formats, broken files, and more large images than a page may hold) while a second
session segments a sample. Prints the app process's peak RSS, the messages each session
got, and whether the second session got its result.

    python -m benchmarks.hostile_uploads

Starts `streamlit run app.py` on a free local port and drives Debian's Chromium with
Playwright, like ``benchmarks.app_memory``.
"""
from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from .app_memory import free_port, rss_gb, start_app

PROJECT = Path(__file__).resolve().parents[1]
BUDGET_GB = 2.0  # the README's stated peak for the app process under this load


def hostile_files(folder: Path) -> list[Path]:
    """10 bad files and 10 valid 2048x2048 images, interleaved: the page takes the first 12,
    and its pixel budget stops the valid ones before the sixth."""
    sys.path.insert(0, str(PROJECT))
    from tests.awkward_files import gif_bomb, png_bomb, tiff_bomb

    from .latency import make_image

    def tiff_bytes(array, **options) -> bytes:
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, array, **options)
        return buffer.getvalue()
    bad = {
        "channels64.tif": tiff_bytes(np.zeros((2000, 2000, 64), np.uint8), photometric="minisblack",
                                     planarconfig="contig", compression="zlib"),
        "imagej64.tif": tiff_bytes(np.zeros((64, 2000, 2000), np.uint8), imagej=True, metadata={"axes": "CYX"},
                                   compression="zlib"),
        "bomb.png": png_bomb(40_000, 40_000),
        "bomb.tif": tiff_bomb(40_000, 40_000),
        "bomb.gif": gif_bomb((65_535, 65_535), (65_535, 65_535)),
        "wide_header.png": png_bomb(100_000, 300),
        "truncated.png": make_png_bytes()[:200],
        "empty.png": b"",
        "text.png": b"not an image at all\n" * 10,
        "stack_planes.tif": tiff_bytes(np.zeros((40, 3, 1000, 1000), np.uint8), imagej=True,
                                       metadata={"axes": "ZCYX"}, compression="zlib"),
    }
    valid = make_image(2048, folder).read_bytes()
    paths = []
    for index, (name, data) in enumerate(bad.items()):
        paths.append(folder / name)
        paths[-1].write_bytes(data)
        image = folder / f"valid_{index:02d}.png"
        # Each valid image its own content (one pixel differs): no result is shared.
        image.write_bytes(valid if index == 0 else _tweaked(valid, index))
        paths.append(image)
    return paths


def make_png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _tweaked(png: bytes, seed: int) -> bytes:
    array = np.array(Image.open(io.BytesIO(png)))
    array[0, 0] = (int(array[0, 0].flat[0]) + seed) % 256
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def upload_session(url: str, files: list[Path], chromium: str, results: dict) -> None:
    from playwright.sync_api import sync_playwright

    started = time.time()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(url)
        page.get_by_text("Upload images or tick a sample").wait_for(timeout=180_000)
        page.locator('input[type="file"]').first.set_input_files([str(f) for f in files])
        page.get_by_text("Download everything (ZIP)").wait_for(timeout=900_000)
        results["errors"] = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
        results["warnings"] = page.locator('[data-testid="stAlertContentWarning"]').all_inner_texts()
        results["segmented"] = page.locator('[data-testid="stMetric"]').filter(has_text="Nuclei").count()
        results["seconds"] = time.time() - started
        browser.close()


def sample_session(url: str, chromium: str, results: dict, delay: float = 20.0) -> None:
    from playwright.sync_api import sync_playwright

    time.sleep(delay)  # arrives while the hostile session is being processed
    started = time.time()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(url)
        page.get_by_role("tab", name="Sample images").click()
        page.get_by_text("fluorescence sparse").click()
        metric = page.locator('[data-testid="stMetric"]').filter(has_text="Nuclei").locator('[data-testid="stMetricValue"]')
        metric.wait_for(timeout=900_000)
        results["nuclei"] = int(metric.inner_text())
        results["seconds"] = time.time() - started
        browser.close()


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m benchmarks.hostile_uploads", description=__doc__.splitlines()[0]).parse_args(argv)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as folder:
        files = hostile_files(Path(folder))
        port = free_port()
        app = start_app(port)
        try:
            url = f"http://127.0.0.1:{port}"
            idle = rss_gb(app.pid, "VmRSS")
            hostile, sample = {}, {}
            threads = [threading.Thread(target=upload_session, args=(url, files, chromium, hostile)),
                       threading.Thread(target=sample_session, args=(url, chromium, sample))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            peak = rss_gb(app.pid, "VmHWM")
        finally:
            app.terminate()
            app.wait(timeout=30)
    print(f"app idle RSS {idle:.2f} GB, peak RSS {peak:.2f} GB (budget {BUDGET_GB} GB)")
    print(f"hostile session: {len(files)} files, {hostile.get('segmented')} segmented, "
          f"{len(hostile.get('errors', []))} error messages, {len(hostile.get('warnings', []))} warnings, "
          f"{hostile.get('seconds', float('nan')):.0f} s")
    for message in hostile.get("errors", []) + hostile.get("warnings", []):
        print("  -", message.replace("\n", " ")[:160])
    print(f"second session meanwhile: {sample.get('nuclei')} nuclei in {sample.get('seconds', float('nan')):.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
