"""A Sphinx extension with fixes for the generated site.

* sphinx-thebe registers its inline configuration script once per read phase, and Jupyter Book 1 can run more
  than one, so a page may declare ``const THEBE_JS_URL`` twice and the browser reports a SyntaxError. Repeated
  scripts are dropped from each page.
* The site's root ``index.html`` (a redirect to the first page) is written here, with the favicon declared, so a
  browser opening the bare address does not ask the server for ``/favicon.ico`` (a 404 on most static hosts).
* MathJax is served with the site when the ``django-static-mathjax`` package (MathJax 3 as files, no Django
  needed) is installed, so formulas render offline and nothing depends on a CDN; otherwise the CDN is used.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path
from typing import Any

from sphinx.util import logging

logger = logging.getLogger(__name__)

# What the site's combined MathJax component needs at run time: the component itself, the TeX extensions and
# accessibility/menu modules it may load on demand, and the CHTML fonts (about 4 MB instead of the package's 24).
_MATHJAX_KEEP = ("tex-mml-chtml.js", "input", "output/chtml", "a11y", "ui", "adaptors")


def _dedupe_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple[str, str]] = set()
    unique = []
    for script in scripts:
        # the same inline script is registered once with filename None and once with ""
        key = (str(getattr(script, "filename", script) or ""), str(getattr(script, "attributes", {}).get("body", "")))
        if key in seen:
            continue
        seen.add(key)
        unique.append(script)
    context["script_files"] = unique


def _bundle_mathjax(app: Any, config: Any) -> None:
    try:
        import mathjax  # provided by django-static-mathjax
    except ImportError:
        logger.info("site_fixes: MathJax will load from its CDN (install django-static-mathjax to bundle it)")
        return
    source = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (source / "tex-mml-chtml.js").is_file():
        logger.info(f"site_fixes: no MathJax build found in {source}; MathJax will load from its CDN")
        return
    staging = Path(app.doctreedir).parent / "mathjax_static"
    target = staging / "mathjax"
    if not (target / "tex-mml-chtml.js").is_file():
        shutil.rmtree(target, ignore_errors=True)
        for part in _MATHJAX_KEEP:
            src, dst = source / part, target / part
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.map"))
            elif src.is_file():
                shutil.copy2(src, dst)
    config.mathjax_path = "mathjax/tex-mml-chtml.js"
    app._lowrank_mathjax = target  # copied into the site's _static/ when the build has finished


def _copy_mathjax(app: Any, exception: Exception | None) -> None:
    # Done by hand: the theme resets html_static_path after this extension has been configured.
    source = getattr(app, "_lowrank_mathjax", None)
    if exception is not None or source is None or app.builder.format != "html":
        return
    shutil.copytree(source, Path(app.outdir) / "_static" / "mathjax", dirs_exist_ok=True)


def _write_root_index(app: Any, exception: Exception | None) -> None:
    # Runs before sphinx-external-toc's own redirect writer, which leaves an existing index.html alone.
    if exception is not None or app.builder.format != "html" or app.config.master_doc == "index":
        return
    first = f"{app.config.master_doc}.html"
    icon = Path(app.config.html_favicon or "").name
    icon_link = f'<link rel="icon" href="_static/{icon}">' if icon else ""
    title = html.escape(str(app.config.html_title or app.config.project))
    (Path(app.outdir) / "index.html").write_text(
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{icon_link}'
        f'<meta http-equiv="Refresh" content="0; url={first}"><title>{title}'
        f'</title></head>\n<body><p><a href="{first}">Go to the course</a></p></body></html>\n', encoding="utf8")


def setup(app: Any) -> dict[str, Any]:
    app.connect("config-inited", _bundle_mathjax)
    app.connect("build-finished", _copy_mathjax)
    app.connect("build-finished", _write_root_index, priority=100)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
