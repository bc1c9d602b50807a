"""Headless Chromium for browser tests: Debian's chromium and chromedriver, never a download.

Also what the page tests share: axe-core (from npm, in node_modules, injected into the page; no
CDN, no network), screenshots under ``.local/screenshots/`` (git-ignored; kept as artefacts),
and a narrow viewport.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
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
    "--window-size=1280,900",
)
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO / ".local" / "screenshots"
AXE_REPORTS = REPO / ".local" / "axe"
# Violations at these impacts fail a test; moderate and minor ones are kept in the report.
FAILING_IMPACTS = frozenset({"serious", "critical"})


def browser_missing() -> str | None:
    """Why no browser test can run here, or None when Chromium and its driver are installed."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        return MISSING
    return None


@contextmanager
def headless_chromium(profile_dir: Path, *, lang: str = "en-US") -> Iterator[Any]:
    """A selenium WebDriver on a fresh headless Chromium profile in locale ``lang``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Selenium Manager would otherwise fetch a browser or driver it thinks is missing.
    previous = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (*_ARGUMENTS, f"--lang={lang}", f"--user-data-dir={profile_dir}"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": lang})
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


def axe_report(driver: Any, name: str) -> dict[str, Any]:
    """Run axe-core on the page; its results are written to ``.local/axe/<name>.json``."""
    source = AXE.read_text(encoding="utf-8")
    # WebDriver's scripts are not subject to the page's Content-Security-Policy.
    driver.execute_script(source)
    results: dict[str, Any] = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done({violations: r.violations, url: r.url}),"
        " e => done({error: String(e)}));"
    )
    assert "error" not in results, results
    AXE_REPORTS.mkdir(parents=True, exist_ok=True)
    (AXE_REPORTS / f"{name}.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results


def failing_violations(results: dict[str, Any]) -> list[str]:
    """Serious and critical violations, each as "rule (impact): first target"."""
    return [
        f"{v['id']} ({v['impact']}): {v['nodes'][0]['target'] if v['nodes'] else ''}"
        for v in results["violations"]
        if v.get("impact") in FAILING_IMPACTS
    ]


def screenshot(driver: Any, name: str) -> Path:
    """Save the whole page (not only the viewport) as ``.local/screenshots/<name>.png``."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


@contextmanager
def viewport(driver: Any, width: int, height: int = 800) -> Iterator[None]:
    """The page laid out as on a phone ``width`` CSS pixels wide (meta viewport honoured)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True},
    )
    try:
        yield
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
