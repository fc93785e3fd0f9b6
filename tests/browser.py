"""Headless Chromium driven by selenium, for the web page's end-to-end tests.

Debian's ``chromium`` and ``chromium-driver`` (``misc/install-system-deps.sh``).
The flags keep Chromium off the network it cannot reach here and out of any
profile but a fresh one.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

#: Flags that let Chromium start headless on a machine with no screen and no network.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1200,1000",
)


def binaries() -> tuple[str, str]:
    """The Chromium and ChromeDriver executables; skip when they are not installed."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip(
            "headless Chromium is not installed (Debian packages chromium and "
            "chromium-driver; `sh misc/install-system-deps.sh` as root adds them)"
        )
    return chromium, driver


def wait(driver, condition, timeout: float, what: str, state=lambda driver: ""):
    """Poll ``condition(driver)`` until it returns something true; return it.
    On a timeout the failure says what ``state(driver)`` reads on the page."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition(driver)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(
        f"{what} did not happen in {timeout} s; page says {state(driver)!r}"
    )


def saved(downloads: Path, name: str, timeout: float = 30) -> bytes:
    """The bytes of the download ``name`` once Chromium has finished it (it
    writes ``name.crdownload`` and renames it at the end)."""
    path = downloads / name
    deadline = time.monotonic() + timeout
    while not path.is_file():
        assert time.monotonic() < deadline, f"{name} was not downloaded"
        time.sleep(0.1)
    return path.read_bytes()


def start(profile: Path, downloads: Path):
    """A Chrome WebDriver with a fresh profile that saves downloads to ``downloads``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            # several downloads from one page, as a person clicking each image
            "profile.default_content_setting_values.automatic_downloads": 1,
            "safebrowsing.enabled": False,
        },
    )
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)
