"""A real browser for the console tests: Debian's headless Chromium driven by Selenium.

`ensure_chromium()` installs `chromium` and `chromium-driver` with apt-get when they are missing
and we are root (as on CI), so `./nb test` needs nothing set up by hand. Test tools cannot
download browsers here; Debian's packages are the supported way.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage", "--disable-extensions", "--hide-scrollbars",
         "--window-size=1440,1000", "--force-device-scale-factor=1", "--lang=en-US"]
_PROFILES: dict[int, str] = {}


def _missing() -> list[str]:
    return [p for p in (CHROMIUM, DRIVER) if not Path(p).exists()]


def ensure_chromium() -> None:
    """Install Debian's chromium and chromium-driver if absent; skip (fail on CI) if we can't."""
    if not _missing():
        return
    reason = ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        reason = "chromium is not installed and this is not a root Debian machine"
    else:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        lock = ["-o", "DPkg::Lock::Timeout=300"]
        for cmd in (["apt-get", *lock, "update", "-q"],
                    ["apt-get", *lock, "install", "-y", "-q", "chromium", "chromium-driver"]):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900,
                                  check=False)
            if done.returncode:
                reason = f"{' '.join(cmd)} failed:\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
                break
    if _missing():
        message = reason or f"still missing after install: {_missing()}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def chrome() -> Any:
    """A fresh headless Chromium with its own profile folder."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="nb-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    _PROFILES[id(driver)] = profile
    return driver


def close(driver: Any) -> None:
    try:
        driver.quit()
    finally:
        shutil.rmtree(_PROFILES.pop(id(driver), ""), ignore_errors=True)


def screenshot(driver: Any, name: str) -> Path:
    """The whole page (not only the window) as test-artifacts/NAME.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    path = ARTIFACTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def console_errors(driver: Any) -> list[str]:
    """Severe messages from the page's console (script errors, failed loads)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
