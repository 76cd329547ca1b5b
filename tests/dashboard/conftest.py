"""Fixtures of the dashboard tests (the site and the browser: see dashboard_site.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from dashboard_site import ARTIFACTS, SESSION, Site, chromium_tools


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    served = Site()
    served.start()
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Any]:
    """Headless Chromium, logged in to ``site`` (its session cookie set)."""
    chromium, chromedriver = chromium_tools()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1500,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    try:
        driver.get(f"{site.url}/health/triggers")  # a page outside the dashboard: no login
        driver.add_cookie({"name": "session", "value": SESSION, "path": "/"})
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
