"""Project-level consistency: environment.yml matches pyproject.toml; the book's configuration is what CI relies on."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _names(requirements: list[str]) -> dict[str, str]:
    out = {}
    for req in requirements:
        m = re.match(r"^([A-Za-z0-9_.\-]+)(.*)$", req.strip())
        assert m, req
        out[m.group(1).lower().replace("_", "-")] = m.group(2).replace(" ", "")
    return out


def test_environment_yml_names_the_same_dependencies_as_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += extra
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = [r for r in pip_section if not r.startswith("-e")]
    assert _names(listed) == _names(wanted)


def test_book_config_is_what_ci_and_colab_rely_on() -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["branch"] == "main"
    assert config["repository"]["path_to_book"] == ""
    assert config["execute"]["raise_on_error"] is True
    assert config["execute"]["timeout"] >= 60
    for pattern in (".venv/**", "student/**", "tests/**", "lowrank_utils/**"):
        assert pattern in config["exclude_patterns"]
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [ch["file"] for part in toc["parts"] for ch in part["chapters"]]
    for f in files:
        assert any((ROOT / (f + ext)).exists() for ext in (".md", ".ipynb")), f
    notebooks = {p.relative_to(ROOT).with_suffix("").as_posix() for p in (ROOT / "book").glob("*.ipynb")}
    assert notebooks <= set(files), f"notebooks missing from _toc.yml: {notebooks - set(files)}"


GPU_CHAPTERS = {"07_linear_overparameterization", "08_image_classification", "09_imagenet"}


def test_every_notebook_is_colab_ready() -> None:
    import nbformat

    for folder in ("book", "student"):
        for path in sorted((ROOT / folder).glob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            badge = nb.cells[0].source
            assert "colab.research.google.com/github/" in badge and f"/blob/main/{folder}/{path.name}" in badge, path
            first_code = next(c for c in nb.cells if c.cell_type == "code").source
            # install only when missing, and never torch/numpy (Colab brings its own)
            assert 'find_spec("lowrank_utils") is None' in first_code, path
            install = first_code.split("\n\n")[0]
            assert not any(pkg in install for pkg in ("torch", "numpy")), path
            assert nb.metadata["kernelspec"]["name"] == "python3", path
            if path.stem in GPU_CHAPTERS:
                assert nb.metadata.get("accelerator") == "GPU", f"{path}: ask Colab for a GPU"
