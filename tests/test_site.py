"""The published site, opened page by page in headless Chromium.

The book is built from the stored notebook outputs (nbval re-executes the chapters elsewhere in the suite), served
over HTTP on localhost, and every page is loaded in a real browser. A page fails if it logs a console error for
one of the site's own resources, if an image of the site does not load, or if an internal link (or its #anchor)
leads nowhere. A screenshot of every page is saved to _build/site-test/ for inspection.

MathJax is served with the site (see book/_ext/site_fixes.py), and every chapter must show rendered formulas.
External resources (the Colab badge images) cannot be reached from an offline test machine; they are counted
and listed in _build/site-test/summary.txt, not fetched.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "_build" / "site-test"
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-quic", "--no-first-run", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,900",
]


def _require(binary: str) -> str:
    """The path of ``binary``; without it the test fails in CI (where it is required) and skips elsewhere."""
    path = shutil.which(binary)
    if path is None:
        message = (f"{binary} is not installed, so the browser test cannot run: `make system-deps` (or "
                   "`sudo apt-get install chromium chromium-driver`) installs it.")
        if os.environ.get("CI"):
            pytest.fail(message + " CI must run the browser test.")
        pytest.skip(message)
    return path


SOURCES = ("book", "lowrank_utils", "_config.yml", "_toc.yml", "references.bib")


def _fresh_build() -> Path | None:
    """``_build/html`` when `make book` wrote it after the last change to any source of the site, else None."""
    html = ROOT / "_build" / "html"
    stamp = html / ".buildinfo"
    if not stamp.is_file():
        return None
    built = stamp.stat().st_mtime
    for name in SOURCES:
        path = ROOT / name
        files = [path] if path.is_file() else [
            p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts
        ]
        if any(f.stat().st_mtime > built for f in files):
            return None
    return html


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as `make book` built it when that build is current (CI runs `make book` first), otherwise the book
    built from the stored outputs into a temporary folder; returns the html directory."""
    fresh = _fresh_build()
    if fresh is not None:
        return fresh
    out = tmp_path_factory.mktemp("site")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    # Paths in local_extensions are resolved against the config file's folder, which is now a temporary one.
    local = config.get("sphinx", {}).get("local_extensions", {})
    config["sphinx"]["local_extensions"] = {name: str(ROOT / path) for name, path in local.items()}
    config_path = out / "_config.yml"
    config_path.write_text(yaml.safe_dump(config))
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(ROOT), "--config", str(config_path), "--path-output", str(out),
           "-W", "-n", "--keep-going"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"site build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return out / "_build" / "html"


@pytest.fixture(scope="module")
def server(site: Path):
    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep the test log readable
            pass

    handler = functools.partial(QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _require("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=_require("chromedriver")), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


_ALL_IMAGES_LOADED = """
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.images);
imgs.forEach(i => { i.loading = 'eager'; });
Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = r; i.onerror = r; })))
  .then(() => done(imgs.map(i => [i.currentSrc || i.src, i.complete && i.naturalWidth > 0])));
"""


_MATH_RENDERED = """
const done = arguments[arguments.length - 1];
if (!window.MathJax || !window.MathJax.startup) { done(-1); return; }
window.MathJax.startup.promise.then(() => done(document.querySelectorAll('mjx-container').length));
"""


def test_every_page_loads_cleanly_in_chromium(site: Path, server: str, browser) -> None:
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html") if "_static" not in p.parts)
    chapters = [p for p in pages if p.startswith("book/")]
    assert "book/intro.html" in chapters and "book/01_effective_rank.html" in chapters
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.set_script_timeout(30)
    problems: list[str] = []
    counts = {"pages": 0, "images": 0, "internal_links": 0, "external_links": 0, "external_console": 0}
    ids_cache: dict[Path, set[str]] = {}
    external: list[str] = []

    def ids_of(path: Path) -> set[str]:
        if path not in ids_cache:
            ids_cache[path] = set(re.findall(r'\bid="([^"]+)"', path.read_text(errors="ignore")))
        return ids_cache[path]

    host = urlparse(server).netloc
    for page in pages:
        browser.set_window_size(1280, 900)
        browser.get(f"{server}/{page}")
        counts["pages"] += 1
        for entry in browser.get_log("browser"):
            if entry["level"] != "SEVERE":
                continue
            urls = re.findall(r"https?://[^\s\"')]+", entry["message"])
            if urls and all(urlparse(u).netloc != host for u in urls):
                counts["external_console"] += 1  # a resource this offline machine cannot reach
                external.append(f"{page}: {entry['message']}")
            else:
                problems.append(f"{page}: console error: {entry['message']}")
        for src, ok in browser.execute_async_script(_ALL_IMAGES_LOADED):
            if urlparse(src).netloc != host:
                continue
            counts["images"] += 1
            if not ok:
                problems.append(f"{page}: image did not load: {src}")
        if page.startswith("book/0"):  # every chapter has formulas; they must render from the bundled MathJax
            rendered = browser.execute_async_script(_MATH_RENDERED)
            counts["formulas"] = counts.get("formulas", 0) + max(rendered, 0)
            if rendered <= 0:
                problems.append(f"{page}: no formula was rendered by MathJax")
        # a full-page screenshot, once the images are in
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1280, min(int(height), 20000))
        browser.save_screenshot(str(ARTIFACTS / (page.replace("/", "__") + ".png")))
        for href in browser.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"):
            parsed = urlparse(href)
            if parsed.scheme not in ("http", "https"):
                continue
            if parsed.netloc != host:
                counts["external_links"] += 1
                continue
            counts["internal_links"] += 1
            url, fragment = urldefrag(href)
            target = site / unquote(urlparse(url).path).lstrip("/")
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{page}: broken link {href}")
            elif fragment and target.suffix == ".html" and unquote(fragment) not in ids_of(target):
                problems.append(f"{page}: link to a missing anchor {href}")
    print(f"site test: {counts}; screenshots in {ARTIFACTS}")
    (ARTIFACTS / "summary.txt").write_text(f"{counts}\n\nproblems:\n" + "\n".join(problems)
                                           + "\n\nunreachable external resources:\n" + "\n".join(external))
    assert not problems, "\n".join(problems[:50])
    assert counts["images"] >= 2 * len([p for p in chapters if p[5:7].isdigit()])
