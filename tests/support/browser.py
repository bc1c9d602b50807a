"""Headless Chromium for browser tests: Debian's chromium and chromedriver, never a download."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MISSING = "Chromium not installed: apt-get install chromium chromium-driver"

_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",  # CI runs as root in a container, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--lang=en-US",
    "--window-size=1280,900",
)


def browser_missing() -> str | None:
    """Why no browser test can run here, or None when Chromium and its driver are installed."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        return MISSING
    return None


@contextmanager
def headless_chromium(profile_dir: Path) -> Iterator[Any]:
    """A selenium WebDriver on a fresh headless Chromium profile; quits on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Selenium Manager would otherwise fetch a browser or driver it thinks is missing.
    previous = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (*_ARGUMENTS, f"--user-data-dir={profile_dir}"):
        options.add_argument(argument)
    driver = None
    try:
        driver = webdriver.Chrome(
            service=Service(executable_path=str(CHROMEDRIVER)), options=options
        )
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        if driver is not None:
            driver.quit()
        if previous is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = previous
        shutil.rmtree(profile_dir, ignore_errors=True)


def xpath_literal(text: str) -> str:
    """``text`` as an XPath 1.0 string literal, whatever quotes it holds."""
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return "concat(" + ', "\'", '.join(f"'{part}'" for part in text.split("'")) + ")"


def field_by_label(driver: Any, label: str) -> Any:
    """The form control a <label for> with exactly this text points at (fails if unwired)."""
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.XPATH, f"//label[normalize-space()={xpath_literal(label)}]")
    target = element.get_attribute("for")
    assert target, f"label {label!r} has no for attribute"
    return driver.find_element(By.ID, target)
