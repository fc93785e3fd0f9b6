"""The official OpenWrt Firmware Selector (``../shared/clients/``), unmodified but
for the lines its own deployment edits, served as a static site on an origin of
its own and driven in headless Chromium as a person uses it."""

from __future__ import annotations

from pathlib import Path

import browser
from real_upstream import shared

#: The release kept in ``../shared/clients/``.
RELEASE = "firmware-selector-5.1.0"
TAG = "v5.1.0"


def deploy(destination: Path, image_url: str, asu_url: str) -> Path:
    """A copy of the selector's ``www/`` with the edits its deployment workflow
    makes (the downloads server, snapshots offered, versions from upstream's
    ``.versions.json``, the tag) and ``asu_url``, the build server."""
    source = shared(f"clients/{RELEASE}/www")
    for path in source.rglob("*"):
        if path.is_file():
            copy = destination / path.relative_to(source)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(path.read_bytes())
    _edit(
        destination / "config.js",
        ('image_url: "../misc"', f'image_url: "{image_url}"'),
        ("//show_snapshots: true", "show_snapshots: true"),
        ('  versions: ["23.05.4"', '  // versions: ["23.05.4"'),
        ('asu_url: "https://sysupgrade.openwrt.org"', f'asu_url: "{asu_url}"'),
    )
    _edit(destination / "js" / "main.js", ("%GIT_VERSION%", TAG))
    return destination


def _edit(path: Path, *replacements: tuple[str, str]) -> None:
    text = path.read_text()
    for old, new in replacements:
        assert text.count(old) == 1, f"{path.name} no longer has {old!r}"
        text = text.replace(old, new)
    path.write_text(text)


def wait(driver, condition, timeout: float = 30, what: str = "the page"):
    """Poll ``condition(driver)`` until it returns something true; return it."""
    return browser.wait(driver, condition, timeout, what, _messages)


def _messages(driver) -> str:
    """The selector's alert and build status lines."""
    alert = driver.find_element("id", "alert").text
    status = driver.find_element("id", "asu-buildstatus").text
    return f"alert {alert!r}, build status {status!r}"


_LIST_IS_IN = (
    "const handler = document.getElementById('models').oninput;"
    "return handler !== null && handler !== window.previousList;"
)


def pick_version(driver, version: str) -> None:
    """Choose ``version`` in the list and wait until its device list is in (each
    version's list installs a new handler on the model field)."""
    from selenium.webdriver.support.ui import Select

    versions = driver.find_element("id", "versions")
    driver.execute_script("window.previousList = null")
    wait(driver, lambda d: d.execute_script(_LIST_IS_IN), what="the first list")
    if versions.get_attribute("value") == version:
        return
    driver.execute_script(
        "window.previousList = document.getElementById('models').oninput"
    )
    Select(versions).select_by_value(version)
    wait(driver, lambda d: d.execute_script(_LIST_IS_IN), what=f"the {version} list")


def find_device(driver, words: str, title: str, version: str) -> None:
    """Type part of a model name, click the match, wait for the device's page."""
    models = driver.find_element("id", "models")
    models.clear()
    models.send_keys(words)
    selector = f'#models-autocomplete-list input[value="{title}"]'
    match = wait(driver, lambda d: d.find_elements("css selector", selector))
    match[0].find_element("xpath", "..").click()
    wait(
        driver,
        lambda d: (
            d.find_element("id", "image-version").text == version
            and d.find_element("id", "asu-packages").get_attribute("value")
        ),
        what=f"the page of {title} {version}",
    )


def request_build(driver, extra_package: str, script: str) -> list[str]:
    """Open "Customize installed packages and/or first boot script", add a
    package and a first-boot script, and click "Request Build"; returns the
    package list the page sends."""
    driver.find_element("css selector", "#asu summary").click()
    packages = driver.find_element("id", "asu-packages")
    packages.send_keys(f" {extra_package}")
    driver.find_element("id", "uci-defaults-content").send_keys(script)
    sent = packages.get_attribute("value").split()
    driver.find_element("id", "asu-request-build").click()
    return sent


def built_images(driver, asu_url: str, timeout: float = 240) -> list[tuple[str, str]]:
    """Wait for the build; the download links the page shows and the sha256 shown
    beside each."""
    store = f"{asu_url}/store/"

    def rows(d):
        found = []
        for row in d.find_elements("css selector", "#download-table1 tr"):
            link = row.find_element("tag name", "a").get_attribute("href")
            shown = row.find_element("css selector", ".hash-content").text
            found.append((link, shown.removeprefix("sha256sum: ")))
        return found if found and all(h.startswith(store) for h, _ in found) else None

    return wait(driver, rows, timeout, "the build")
