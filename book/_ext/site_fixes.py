"""A Sphinx extension with fixes for the generated site.

sphinx-thebe registers its inline configuration script once per read phase, and Jupyter Book 1 can run more
than one, so a page may declare ``const THEBE_JS_URL`` twice and the browser reports a SyntaxError. Dropping
repeated scripts from each page's context keeps the console clean.
"""

from __future__ import annotations

from typing import Any


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


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
