"""Headless Chromium driven by selenium, for the web page's end-to-end tests.

Debian's ``chromium`` and ``chromium-driver`` (``misc/install-system-deps.sh``).
The flags keep Chromium off the network it cannot reach here and out of any
profile but a fresh one.
"""

from __future__ import annotations

import shutil
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
            "safebrowsing.enabled": False,
        },
    )
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)
