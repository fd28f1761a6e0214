"""The house's import rules, read from the source (every import, function-level and relative ones included).

app -> models <- training: ``app`` and ``training`` never import each other; ``models`` imports neither, nor a web
stack, argparse, pandas or scikit-learn. Inside ``training/``, the library sub-packages never import a command,
and a command imports no other command (only ``cli.py`` imports them all).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("models", "app", "training")
MODELS_MAY_NOT = ("app", "training", "fastapi", "starlette", "uvicorn", "argparse", "pandas", "sklearn")
TRAINING_LIBRARY = ("data", "loop", "scoring", "reports", "importers")
COMMANDS = ("train", "evaluate", "calibrate", "predict", "import_weights", "cli", "bundle", "localize")
COMMAND_MODULES = tuple(f"training.{name}" for name in COMMANDS)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, root: Path) -> list[str]:
    """Every module ``path`` imports, absolute; for ``from X import y`` both ``X`` and ``X.y`` (y may be a module)."""
    name = module_name(path, root)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []  # level 1: this package
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.append(module)
            found.extend(f"{module}.{alias.name}" for alias in node.names)
    return found


def is_within(imported: str, modules: tuple[str, ...]) -> str | None:
    """The first of ``modules`` that ``imported`` is, or lies inside."""
    return next((m for m in modules if imported == m or imported.startswith(m + ".")), None)


def violations(root: Path) -> list[str]:
    """Every import that breaks a rule, as "importer -> imported (rule)", sorted."""
    found: set[str] = set()
    for side in SIDES:
        for path in sorted((root / side).rglob("*.py")):
            importer = module_name(path, root)
            for imported in imported_names(path, root):
                rule = broken_rule(importer, imported)
                if rule:
                    found.add(f"{importer} -> {imported} ({rule})")
    return sorted(found)


def broken_rule(importer: str, imported: str) -> str | None:
    side = importer.split(".")[0]
    if side == "models" and is_within(imported, MODELS_MAY_NOT):
        return "models imports neither side nor a web, CLI or data-frame library"
    if side == "app" and is_within(imported, ("training",)):
        return "app never imports training"
    if side != "training":
        return None
    if is_within(imported, ("app",)):
        return "training never imports app"
    command = is_within(imported, COMMAND_MODULES)
    if command is None:
        return None
    if importer.split(".")[1] in TRAINING_LIBRARY:
        return "a training sub-package never imports a command"
    if is_within(importer, COMMAND_MODULES) not in (None, command) and importer != "training.cli":
        return "a command imports no other command"
    return None


def test_the_tree_keeps_the_import_rules() -> None:
    assert violations(ROOT) == []


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_planted_violations_are_each_found(tmp_path: Path) -> None:
    for package in ("models", "app", "training", "training/data", "training/scoring"):
        write(tmp_path, f"{package}/__init__.py", "")
    write(tmp_path, "models/network.py", "import torch\ndef f():\n    import fastapi\n")
    write(tmp_path, "app/routes.py", "def handler():\n    from training.data import dataset\n")
    write(tmp_path, "training/data/dataset.py", "from training.evaluate import EvaluateOptions\n")
    write(tmp_path, "training/scoring/inference.py", "from .. import predict\n")
    write(tmp_path, "training/calibrate.py", "from training.evaluate import load\nfrom training.scoring import x\n")
    write(tmp_path, "training/cli.py", "def run():\n    from training.train import run_training\n")
    write(tmp_path, "training/train.py", "from . import train\nfrom app.errors import ApiError\n")
    assert violations(tmp_path) == [
        "app.routes -> training.data (app never imports training)",
        "app.routes -> training.data.dataset (app never imports training)",
        "models.network -> fastapi (models imports neither side nor a web, CLI or data-frame library)",
        "training.calibrate -> training.evaluate (a command imports no other command)",
        "training.calibrate -> training.evaluate.load (a command imports no other command)",
        "training.data.dataset -> training.evaluate (a training sub-package never imports a command)",
        "training.data.dataset -> training.evaluate.EvaluateOptions (a training sub-package never imports a command)",
        "training.scoring.inference -> training.predict (a training sub-package never imports a command)",
        "training.train -> app.errors (training never imports app)",
        "training.train -> app.errors.ApiError (training never imports app)",
    ]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from . import x", ["training.data", "training.data.x"]),
        ("from .. import y", ["training", "training.y"]),
        ("from ..scoring import z", ["training.scoring", "training.scoring.z"]),
        ("import a.b as c", ["a.b"]),
    ],
)
def test_relative_imports_are_resolved(tmp_path: Path, source: str, expected: list[str]) -> None:
    write(tmp_path, "training/data/mod.py", source + "\n")
    assert imported_names(tmp_path / "training" / "data" / "mod.py", tmp_path) == expected
