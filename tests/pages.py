"""Driving Debian's headless chromium from the tests (Selenium, through the distribution's chromedriver)."""
import os
import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(os.environ.get("PELOTON_ARTIFACTS", Path(__file__).parent / "artifacts"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def open_browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail("the page tests need Debian's chromium and chromium-driver: apt-get install chromium "
                    "chromium-driver (./run_local.sh test installs them as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1700", "--allow-file-access-from-files"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def errors(driver) -> list:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def move_slider(driver, fraction: float) -> None:
    driver.execute_script("const s = document.getElementById('time');"
                          "s.value = Math.round(Number(s.max) * arguments[0]);"
                          "s.dispatchEvent(new Event('input'));", fraction)


def dots(driver) -> dict:
    return driver.execute_script(
        "const out = {}; for (const c of document.querySelectorAll('#map circle[data-bib]')) {"
        " if (c.getAttribute('visibility') === 'visible') out[c.dataset.bib] = [c.getAttribute('cx'), c.getAttribute('cy')]; }"
        "return out;")


