"""Nothing provider-specific outside providers/, and the pure core imports no provider."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("jitsi", "telemost", "trueconf", "videomost", "телемост")
# Known and meant: the pasted-link masks name the services people paste links of
# (core/links.py), the config's default provider is a built-in, and the old command
# name stays as an alias of `meetplugin token telemost`.
ALLOWED = {
    ("radicale_meetplugin/core/links.py", "Яндекс Телемост"),
    ("radicale_meetplugin/core/links.py", "TrueConf"),
    ("radicale_meetplugin/core/links.py", "Videomost"),
    ("radicale_meetplugin/core/links.py", "Jitsi Meet"),
    ("radicale_meetplugin/core/links.py", r"telemost\.(?:360\.)?yandex\.ru/j/\S+"),
    ("radicale_meetplugin/config.py", "jitsi"),
    ("radicale_meetplugin/cli.py", "telemost-token"),
    ("radicale_meetplugin/cli.py", "telemost"),
    ("radicale_meetplugin/cli.py", "the same as: token telemost"),
    ("radicale_meetplugin/cli.py", "The same as `meetplugin token telemost`."),
}


def _sources():
    for folder in ("radicale_meetplugin", "bridge"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "providers" not in path.relative_to(ROOT).parts:
                yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text())


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def test_no_provider_names_or_properties_outside_providers():
    found = []
    for name, tree in _sources():
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                continue
            if id(node) in docs or (name, node.value) in ALLOWED:
                continue
            text = node.value.lower()
            if "x-telemost" in text or any(n in text.split() or n == text for n in NAMES):
                found.append(f"{name}:{node.lineno}: {node.value[:60]!r}")
    assert found == []


def test_the_core_imports_no_provider_state_or_shell():
    for path in sorted((ROOT / "radicale_meetplugin" / "core").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            for module in modules:
                assert not module.startswith(
                    (
                        "radicale_meetplugin.providers",
                        "radicale_meetplugin.state",
                        "radicale_meetplugin.protocol",
                        "radicale_meetplugin.radicale",
                        "bridge",
                    )
                ), f"{path.name} imports {module}"
