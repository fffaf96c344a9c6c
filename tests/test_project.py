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


# chapters whose experiments use a GPU when there is one (chapter 9's live run is a CPU run at every scale)
GPU_CHAPTERS = {"07_linear_overparameterization", "08_image_classification"}


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
            wants_gpu = nb.metadata.get("accelerator") == "GPU"
            assert wants_gpu == (path.stem in GPU_CHAPTERS), f"{path}: only chapters that use a GPU ask Colab for one"


def _imported_modules(folder: Path) -> set[str]:
    import ast

    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_every_third_party_import_of_the_package_is_a_declared_dependency() -> None:
    import sys
    from importlib.metadata import packages_distributions

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = set(_names(project["dependencies"]))
    extras = {name for extra in project["optional-dependencies"].values() for name in _names(extra)}
    providers = packages_distributions()
    third_party = {m for m in _imported_modules(ROOT / "lowrank_utils")
                   if m not in sys.stdlib_module_names and m != "lowrank_utils"}
    optional: set[str] = set()  # modules that may come from an extra instead (none today)
    for module in sorted(third_party):
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        assert dists, f"{module} is imported by lowrank_utils but no installed distribution provides it"
        wanted = declared if module not in optional else declared | extras
        assert dists & wanted, f"lowrank_utils imports {module} ({sorted(dists)}) but pyproject does not declare it"


def test_python_and_torch_floors_match_what_is_used() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # the tests use tomllib and the code 3.11 syntax; CI runs 3.11 and 3.12
    assert project["requires-python"] == ">=3.11"
    torch_floor = _names(project["dependencies"])["torch"]
    assert torch_floor == ">=2.3", "torch.amp.GradScaler('cuda') and the checkpoint allow-list need torch 2.3"


def test_licences_and_citation_are_present_and_valid() -> None:
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert "CC BY 4.0" in (ROOT / "LICENSE-CONTENT.md").read_text()
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["title"] and cff["authors"] and cff["license"] == "MIT"
    assert any(ref.get("title") == "The Low-Rank Simplicity Bias in Deep Networks" for ref in cff["references"])
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and "LICENSE" in project["license-files"]
