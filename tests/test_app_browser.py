"""A real browser: `streamlit run app.py`, Debian's Chromium driven by Playwright."""
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from .conftest import PROJECT, SAMPLES, free_port

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
ARTIFACTS = PROJECT / "artifacts"

if CHROMIUM is None and os.environ.get("CI") != "true":  # .ci/run installs it
    pytest.skip("Debian's Chromium is not installed (apt-get install chromium); CI installs it and runs this test",
                allow_module_level=True)


@pytest.fixture(scope="module")
def server():
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "NUCLEI_MODEL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
         "--server.address", "127.0.0.1"], cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail(f"streamlit did not become healthy: {process.stdout.read().decode()[-2000:]}")
    yield url
    process.terminate()
    process.wait(timeout=20)


def test_upload_in_a_real_browser(server):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"])
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(server)
        expect(page.get_by_text("Upload images or tick a sample")).to_be_visible(timeout=120_000)
        dropzone = page.get_by_test_id("stFileUploaderDropzone")
        expect(dropzone.get_by_text("Upload", exact=True)).to_be_visible(timeout=60_000)
        with page.expect_file_chooser() as chooser:
            dropzone.get_by_text("Upload", exact=True).click()
        chooser.value.set_files(str(SAMPLES / "images" / "fluorescence_dense.png"))
        count = page.locator('[data-testid="stMetric"]').filter(has_text="Nuclei").locator('[data-testid="stMetricValue"]')
        expect(count).to_be_visible(timeout=180_000)
        assert 120 <= int(count.inner_text()) <= 240  # ground truth: 179
        overlay = page.locator('[data-testid="stImage"]').filter(has_text="nuclei")
        expect(overlay.first).to_be_visible()
        picture = overlay.first.locator("img").element_handle()
        # Visible is not loaded: wait until the browser has decoded the overlay's pixels.
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=picture, timeout=60_000)
        page.wait_for_timeout(1500)  # let the Plotly view finish drawing for the screenshot
        page.screenshot(path=str(ARTIFACTS / "app_screenshot.png"), full_page=False)
        # The ground-truth tab stays open after its upload reruns the page (it used to jump
        # back to the first tab, hiding the scores just computed).
        truth_tab = page.get_by_role("tab", name="Compare to ground truth")
        truth_tab.click()
        truth_drop = page.get_by_test_id("stFileUploaderDropzone").nth(1)
        expect(truth_drop).to_be_visible(timeout=60_000)
        with page.expect_file_chooser() as chooser:
            truth_drop.get_by_text("Upload", exact=True).click()
        chooser.value.set_files(str(SAMPLES / "ground_truth" / "fluorescence_dense.png"))
        expect(page.locator('[data-testid="stMetric"]').filter(has_text="DSB mean AP")).to_be_visible(timeout=120_000)
        expect(truth_tab).to_have_attribute("aria-selected", "true")
        browser.close()
    assert (ARTIFACTS / "app_screenshot.png").stat().st_size > 10_000


def choose_option(page, selectbox, name: str, tries: int = 3) -> None:
    """Opens ``selectbox`` and clicks its option ``name``. The page lays itself out again as the
    expanders above it open, and a click then can land before the box takes it (a CI run
    waited 30 s for the option of a list that never opened): open it again, a few times."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(tries - 1):
        selectbox.click()
        try:
            page.get_by_role("option", name=name).click(timeout=10_000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    selectbox.click()
    page.get_by_role("option", name=name).click()


def test_the_zip_records_each_image_s_choices_in_a_real_browser(server, tmp_path):
    """The ZIP is built when its button is clicked, outside the page's run: each image's Z plane
    and pixel size, chosen on the page, must still reach its summary.csv row."""
    import io
    import zipfile

    import numpy as np
    import pandas as pd
    import tifffile
    from playwright.sync_api import expect, sync_playwright
    from scipy import ndimage

    from nuclei_app.imageio import read_image

    sharp = (read_image(SAMPLES / "images" / "fluorescence_sparse.png")[..., 0] * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", np.stack([ndimage.gaussian_filter(sharp, 6), sharp]), imagej=True,
                     metadata={"axes": "ZYX"})
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        page.goto(server)
        dropzone = page.get_by_test_id("stFileUploaderDropzone")
        expect(dropzone.get_by_text("Upload", exact=True)).to_be_visible(timeout=120_000)
        with page.expect_file_chooser() as chooser:
            dropzone.get_by_text("Upload", exact=True).click()
        chooser.value.set_files([str(tmp_path / "stack.tif"), str(SAMPLES / "images" / "fluorescence_dense.png")])
        counts = page.locator('[data-testid="stMetric"]').filter(has_text="Nuclei").locator('[data-testid="stMetricValue"]')
        expect(counts.nth(1)).to_be_visible(timeout=180_000)
        for expander in page.get_by_text("Nucleus diameter, channel and pixel size").all():
            expander.click()
        choose_option(page, page.get_by_test_id("stSelectbox").filter(has_text="Z plane"), "The sharpest plane")
        expect(page.get_by_text("plane 1, the sharpest, is segmented")).to_be_visible(timeout=120_000)
        fields = page.locator('input[aria-label="Pixel size (µm)"]')   # neither file records one
        expect(fields).to_have_count(2)
        for index in range(2):
            fields.nth(index).fill("0.5")
            fields.nth(index).press("Enter")
            median = page.locator('[data-testid="stMetric"]').filter(has_text="Median area").nth(index)
            expect(median.locator('[data-testid="stMetricValue"]')).to_contain_text("µm²", timeout=120_000)
        page.wait_for_timeout(1000)
        with page.expect_download(timeout=120_000) as download:
            page.get_by_role("button", name="Download everything (ZIP)").click()
        archive = zipfile.ZipFile(io.BytesIO(open(download.value.path(), "rb").read()))
        browser.close()
    summary = pd.read_csv(archive.open("summary.csv"), keep_default_na=False).set_index("image")
    assert summary.loc["stack", "settings"].endswith("; pixel size 0.5 µm; z plane focus")
    assert summary.loc["stack", "notes"].startswith("a stack of 2 Z planes: plane 1, the sharpest")
    assert summary["pixel_size_um"].tolist() == [0.5, 0.5]
    assert summary.loc["fluorescence_dense", "settings"].endswith("; pixel size 0.5 µm")
