"""The Space in a real headless Chromium: open, paint a stroke, add the shot, train, see a segmentation.

Run with ``make test-browser`` (installs Debian's chromium + chromium-driver and Selenium). The
screenshot lands in ``$SPACE_SCREENSHOT_DIR`` (default: tests/browser/screenshots/).
"""

import os
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "spaces_app"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1300,1800"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=opts)
    yield driver
    driver.quit()


def _button(driver, text):
    from selenium.webdriver.common.by import By

    return next(b for b in driver.find_elements(By.TAG_NAME, "button") if b.text.strip() == text)


def _wait_for(predicate, timeout=180, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_paint_train_and_see_a_segmentation(browser):
    import app
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    port = _free_port()
    demo = app.build_demo()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    shots_dir = Path(os.environ.get("SPACE_SCREENSHOT_DIR", ROOT / "tests" / "browser" / "screenshots"))
    shots_dir.mkdir(parents=True, exist_ok=True)
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        tab = _wait_for(lambda: [t for t in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]")
                                 if "Annotate" in t.text], what="the tabs")[0]
        tab.click()
        _button(browser, "New face").click()
        status = browser.find_element(By.ID, "annotate-status")
        _wait_for(lambda: "paint its parts" in status.text, what="a new face")
        canvas = browser.find_element(By.ID, "annotator").find_elements(By.TAG_NAME, "canvas")[-1]
        time.sleep(1)
        # a skin-coloured stroke (the default brush) across the middle of the face
        ActionChains(browser).move_to_element_with_offset(canvas, -40, 10).click_and_hold() \
            .move_by_offset(40, 0).move_by_offset(40, 0).release().perform()
        time.sleep(1)
        _button(browser, "Add as shot").click()
        _wait_for(lambda: "1 shot(s)" in status.text, what="the shot to be added")
        assert "skin" in status.text
        _button(browser, "Train").click()
        _button(browser, "Train").click()  # a double click must not start a second run or break the app
        _wait_for(lambda: "Trained" in status.text, what="training to finish")
        preview = browser.find_element(By.ID, "preview")
        img = _wait_for(lambda: preview.find_elements(By.TAG_NAME, "img"), what="the segmentation preview")[0]
        assert img.size["height"] > 100
        path = shots_dir / "space-annotate-train.png"
        browser.save_screenshot(str(path))
        pixels = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(path))
        assert pixels.std() > 10
    finally:
        demo.close()
