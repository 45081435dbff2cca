"""JupyterLab in a real browser (``make browser``): every notebook at the smoke budget, run as a learner runs it.

Starts JupyterLab from this environment on 127.0.0.1 (a free port, a random token) over a copy of the notebooks,
drives Debian's chromium headless through Selenium and chromium-driver, and for each notebook: opens it, runs all
cells, waits for the kernel to go idle, then checks that no cell holds an error, that every widget panel renders
(no "Error displaying widget", no raw ``VBox(...)`` text), that moving one slider of each panel and pressing its
Run button redraws the panel's plotly figure (its data change), and that plotly figures are drawn as SVG. A
screenshot per notebook goes to ``reports/browser/``. The server and the browser stop at the end, also on failure.

    python tests/browser_lab.py [--notebooks 00_tour 09_canopy_height] [--out reports/browser]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
RUN_TIMEOUT = 240  # seconds for one notebook's cells at the smoke budget

# JavaScript run in the page (JupyterLab exposes its application as window.jupyterapp with expose_app_in_browser)
STATE_JS = """
const app = window.jupyterapp; if (!app) return {ready: false};
const panel = app.shell.currentWidget; if (!panel || !panel.content || !panel.sessionContext) return {ready: false};
const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
const cells = Array.from(panel.content.model.cells);
const code = cells.filter(c => c.type === 'code');
const errors = [];
code.forEach((c, i) => c.outputs.toJSON().forEach(o => { if (o.output_type === 'error') errors.push(
    `cell ${i}: ${o.ename}: ${o.evalue}`); }));
return {ready: true, status: kernel ? kernel.status : 'none', cells: code.length,
        pending: code.filter(c => c.executionCount === null || c.executionCount === undefined).length,
        running: Array.from(document.querySelectorAll('.jp-InputArea-prompt'))
                      .filter(p => p.textContent.includes('*')).length,
        errors: errors};
"""
FIGURE_DIGEST_JS = """
const gd = arguments[0].querySelector('.js-plotly-plot');
if (!gd || !gd.data) return null;
const s = JSON.stringify(gd.data); let h = 0;
for (let i = 0; i < s.length; i++) { h = (h * 31 + s.charCodeAt(i)) | 0; }
return s.length + ':' + h;
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(folder: Path, port: int, token: str) -> subprocess.Popen:
    settings = folder / ".lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false",
                                                                          "checkForUpdates": False}))
    # user settings and workspaces live in the throwaway folder: the learner's own JupyterLab is left alone
    env = {**os.environ, "KIT_BUDGET": "smoke", "JUPYTER_PLATFORM_DIRS": "1",
           "JUPYTERLAB_SETTINGS_DIR": str(folder / ".lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(folder / ".lab-workspaces")}
    env.pop("KIT_INTERACTIVE", None)  # the panels must be interactive, as in a learner's session
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           f"--ServerApp.token={token}", "--ServerApp.password=", "--LabApp.expose_app_in_browser=True", "--allow-root",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           f"--ServerApp.root_dir={folder}", "--ServerApp.open_browser=False"]
    log = open(folder / "jupyterlab.log", "w")  # noqa: SIM115 (kept open for the server's lifetime)
    return subprocess.Popen(cmd, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(server: subprocess.Popen) -> None:
    """Stop the server and its kernels (its process group), politely first."""
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(server.pid, sig)
            server.wait(grace)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def wait_for_server(port: int, token: str, server: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with status {server.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer on port {port} within {timeout} s")


def start_browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1500,1100", "--hide-scrollbars"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def wait(driver, condition, timeout: float, what: str, poll: float = 0.5):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = condition(driver)
        if last:
            return last
        time.sleep(poll)
    raise TimeoutError(f"{what} within {timeout:.0f} s (last state: {last})")


def idle(driver) -> dict | None:
    state = driver.execute_script(STATE_JS)
    done = state.get("ready") and state["status"] == "idle" and state["pending"] == 0 and state["running"] == 0
    return state if done else None


def settle(driver, timeout: float, what: str) -> dict:
    """Idle twice in a row (a widget callback may start a new execution right after an idle)."""
    wait(driver, idle, timeout, what)
    time.sleep(1.0)
    return wait(driver, idle, timeout, what)


def check_notebook(driver, base: str, token: str, name: str, shots: Path) -> dict:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    started = time.time()
    driver.get(f"{base}/lab/tree/{name}.ipynb?token={token}&reset")
    wait(driver, lambda d: d.execute_script(
        "const p = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        "return !!(p && p.sessionContext && p.sessionContext.session && p.sessionContext.session.kernel &&"
        " p.sessionContext.session.kernel.status === 'idle');"), 120, f"{name}: kernel ready")
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")
    time.sleep(2.0)
    state = settle(driver, RUN_TIMEOUT, f"{name}: all cells run")
    problems = [f"error output in {e}" for e in state["errors"]]
    page = driver.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
    text = page.text
    if "Error displaying widget" in text:
        problems.append("a widget shows 'Error displaying widget'")
    raw = [line for line in text.splitlines() if line.startswith(("VBox(", "HBox(", "interactive("))]
    if raw:
        problems.append(f"a widget rendered as text: {raw[0][:80]}")
    svg = driver.execute_script("return document.querySelectorAll('.js-plotly-plot .main-svg').length;")
    plots = driver.execute_script("return document.querySelectorAll('.js-plotly-plot').length;")
    if plots == 0 or svg == 0:
        problems.append(f"plotly figures drawn as SVG: {svg} svg layers in {plots} figures")
    panels = driver.find_elements(By.CSS_SELECTOR, ".widget-vbox")
    panels = [p for p in panels if p.find_elements(By.CSS_SELECTOR, ".widget-output")
              and p.find_elements(By.CSS_SELECTOR, "button")]
    moved = 0
    for i, panel in enumerate(panels):
        handles = panel.find_elements(By.CSS_SELECTOR, ".noUi-handle")
        if not handles:
            continue  # a panel of dropdowns only
        before = driver.execute_script(FIGURE_DIGEST_JS, panel)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", panel)
        handle = handles[0]
        now, top = handle.get_attribute("aria-valuenow"), handle.get_attribute("aria-valuemax")
        handle.click()
        handle.send_keys(Keys.ARROW_LEFT if now == top else Keys.ARROW_RIGHT)
        panel.find_element(By.CSS_SELECTOR, "button").click()
        time.sleep(1.0)
        settle(driver, RUN_TIMEOUT, f"{name}: panel {i} recomputed")
        # the kernel may go idle before the browser has drawn the new output: wait for the redraw itself
        try:
            wait(driver, lambda d, p=panel, b=before: d.execute_script(FIGURE_DIGEST_JS, p) not in (None, b), 60,
                 f"{name}: panel {i} figure redrawn")
        except TimeoutError:
            problems.append(f"panel {i}: moving the slider and pressing Run left its figure unchanged"
                            if before is not None else f"panel {i} showed no plotly figure")
        moved += 1
        if i == 0:
            driver.save_screenshot(str(shots / f"{name}_widget.png"))
    driver.execute_script("document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer, "
                          ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook').scrollTop = 0;")
    driver.save_screenshot(str(shots / f"{name}.png"))
    driver.execute_script("window.jupyterapp.commands.execute('kernelmenu:shutdown');"
                          "window.jupyterapp.commands.execute('docmanager:close-all-files');")
    return {"notebook": name, "seconds": round(time.time() - started, 1), "cells": state["cells"],
            "figures": plots, "panels": len(panels), "sliders_moved": moved, "problems": problems}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notebooks", nargs="*", help="names like 00_tour (default: every NN_*.ipynb)")
    parser.add_argument("--out", default=str(ROOT / "reports" / "browser"))
    args = parser.parse_args()
    for tool in (CHROMIUM, DRIVER):
        if not Path(tool).exists():
            print(f"{tool} is missing: `make browser` installs chromium and chromium-driver with apt-get")
            return 2
    names = args.notebooks or sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    shots = Path(args.out)
    shots.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kit-lab-"))
    for name in names:  # a copy: running and saving in the browser never touches the checkout
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", work / f"{name}.ipynb")
    port, token = free_port(), secrets.token_hex(16)
    server = start_lab(work, port, token)
    driver = None
    results = []
    try:
        wait_for_server(port, token, server)
        driver = start_browser()
        for name in names:
            try:
                results.append(check_notebook(driver, f"http://127.0.0.1:{port}", token, name, shots))
            except Exception as err:  # one notebook's failure is reported, the others still run
                results.append({"notebook": name, "problems": [f"{type(err).__name__}: {err}"]})
                driver.save_screenshot(str(shots / f"{name}.FAILED.png"))
            r = results[-1]
            print(f"{name}: {'ok' if not r['problems'] else 'FAILED'} "
                  + (f"({r['seconds']} s, {r['figures']} figures, {r['sliders_moved']} sliders moved)"
                     if "seconds" in r else "") + "".join(f"\n  - {p}" for p in r["problems"]), flush=True)
    finally:
        if driver is not None:
            driver.quit()
        stop(server)
        shutil.copy(work / "jupyterlab.log", shots / "jupyterlab.log")
        shutil.rmtree(work, ignore_errors=True)
    (shots / "results.json").write_text(json.dumps(results, indent=2))
    failed = [r["notebook"] for r in results if r["problems"]]
    print(f"browser check: {len(results) - len(failed)} of {len(results)} notebooks passed"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
