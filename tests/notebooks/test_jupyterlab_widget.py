"""The live panel renders and works in a real JupyterLab, in headless Chromium.

Starts ``jupyter lab`` on a free port with a small notebook, opens it in headless
Chromium (Selenium + the system chromedriver), runs all cells, and checks that the
panel's buttons and status appear, that pressing Start in the browser starts the
trigger in the kernel, and that the panel then shows ``running``.

Needs the ``browser`` tooling: ``apt-get install chromium chromium-driver`` and
``pip install jupyterlab selenium``; skipped (with the reason) where they are missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.conftest import browser_tools

CELL = """
import reactivex
import portico_rx as prx
from portico_rx.testing import RecordingJobCreator

trigger = prx.PipelineTrigger(
    reactivex.never().pipe(prx.to_job("demo.job")),
    job_creator=RecordingJobCreator(),
    name="browser-demo",
)
trigger.widget(refresh=0.2)
"""


def _tools() -> tuple[str, str]:
    return browser_tools("jupyterlab", "selenium")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def jupyter_lab(root: Path, token: str) -> Iterator[str]:
    port = _free_port()
    log = (root / "lab.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--ServerApp.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "JUPYTER_PLATFORM_DIRS": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((root / "lab.log").read_text()[-2000:]) from None
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _wait(driver: Any, script: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for: {script}")


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_panel_renders_and_start_button_works_in_jupyterlab(tmp_path: Path) -> None:
    chromium, chromedriver = _tools()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(CELL)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, tmp_path / "panel.ipynb")
    token = uuid.uuid4().hex
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    with jupyter_lab(tmp_path, token) as url:
        driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
        try:
            driver.get(f"{url}/lab/tree/panel.ipynb?token={token}")
            _wait(
                driver,
                "return !!(window.jupyterapp && window.jupyterapp.shell.currentWidget"
                " && window.jupyterapp.shell.currentWidget.sessionContext"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                ".connectionStatus === 'connected')",
                timeout=90,
            )
            driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")
            buttons = _wait(
                driver,
                "const b = [...document.querySelectorAll('.jupyter-widgets button')]"
                ".map(e => e.textContent.trim()); return b.length >= 3 ? b : null;",
                timeout=90,
            )
            assert {"Start", "Stop", "Pause"} <= set(buttons), buttons
            header = _wait(
                driver,
                "const h = [...document.querySelectorAll('.jupyter-widgets .widget-html')]"
                ".map(e => e.textContent).find(t => t.includes('browser-demo'));"
                " return h || null;",
            )
            assert "stopped" in header
            driver.execute_script(
                "[...document.querySelectorAll('.jupyter-widgets button')]"
                ".find(e => e.textContent.trim() === 'Start').click();"
            )
            running = _wait(
                driver,
                "const h = [...document.querySelectorAll('.jupyter-widgets .widget-html')]"
                ".map(e => e.textContent).find(t => t.includes('browser-demo'));"
                " return h && h.includes('running') ? h : null;",
            )
            assert "running" in running
            message = _wait(
                driver,
                "const m = [...document.querySelectorAll('.jupyter-widgets .widget-html')]"
                ".map(e => e.textContent).find(t => t.includes('started'));"
                " return m || null;",
            )
            assert json.dumps(message)
        finally:
            driver.quit()
