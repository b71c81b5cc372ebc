"""The release as an admin gets it: sdist and wheel built from the checkout, the wheel in a
fresh venv, Radicale from that venv with the plugin enabled, and a keyword becomes a link.

Slow (a build and an install, about a minute): `make test-unit` and `-m 'not slow'` skip it.
Building and installing need PyPI (pip's cache makes it quick); Radicale is on loopback.
"""

from __future__ import annotations

import ast
import email.parser
import os
import re
import shutil
import subprocess
import sys
import tarfile
import uuid
import zipfile
from pathlib import Path

import icalendar
import pytest
from harness import RadicaleServer, event

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# What never goes into a build: local venvs, caches, earlier builds, run data.
IGNORED = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "var",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    ".mypy_cache",
    ".ruff_cache",
)


def version_in_source() -> str:
    """`__version__` as written in the checkout (the one place the version lives)."""
    tree = ast.parse((ROOT / "radicale_meetplugin" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__version__":
            return ast.literal_eval(node.value)
    raise AssertionError("no __version__ in radicale_meetplugin/__init__.py")


def run(*args: str | Path, cwd: Path, timeout: float = 300) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{args}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """`python -m build` of a copy of the checkout: the sdist, and the wheel built from it."""
    work = tmp_path_factory.mktemp("build")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=IGNORED)
    out = work / "dist"
    run(sys.executable, "-m", "build", "--outdir", out, source, cwd=work)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel, "work": work}


@pytest.fixture(scope="module")
def venv(dist) -> Path:
    """A fresh venv with the wheel installed, as docs/install.md does it."""
    folder = dist["work"] / "venv"
    run(sys.executable, "-m", "venv", folder, cwd=dist["work"])
    run(folder / "bin" / "python", "-m", "pip", "install", "-q", dist["wheel"], cwd=dist["work"])
    return folder


def test_sdist_holds_configs_docs_license_and_the_test_helpers(dist, tmp_path):
    with tarfile.open(dist["sdist"]) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
        archive.extractall(tmp_path, filter="data")
    for needed in (
        "LICENSE",
        "CHANGELOG.md",
        "CONTRIBUTING.md",
        "config/meetplugin.conf",
        "config/radicale.service",
        "config/meetplugin-bridge.service",
        "config/bridge.example.conf",
        "docs/configuration.md",
        "docs/install.md",
        "tests/conftest.py",
        "tests/harness.py",
        "tests/bridge_support.py",
        "tests/emulators/telemost.py",
        "tests/e2e/test_wheel.py",
    ):
        assert needed in names, needed
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    # pytest finds its helpers in the unpacked sdist (it said "No module named 'harness'")
    (unpacked,) = tmp_path.iterdir()
    collected = run(sys.executable, "-m", "pytest", "--collect-only", "-q", cwd=unpacked)
    summary = collected.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ tests collected in [\d.]+s", summary), collected[-3000:]
    assert "tests/unit/test_detect.py::" in collected and "tests/e2e/test_wheel.py::" in collected


def test_wheel_metadata_license_and_typing_markers(dist):
    version = version_in_source()
    assert dist["wheel"].name == f"radicale_meetplugin-{version}-py3-none-any.whl"
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = set(wheel.namelist())
        info = f"radicale_meetplugin-{version}.dist-info"
        metadata = email.parser.Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
        license_text = wheel.read(f"{info}/licenses/LICENSE").decode()
    assert "radicale_meetplugin/py.typed" in names and "bridge/py.typed" in names
    assert not [n for n in names if n.startswith("tests/")]
    assert metadata["Version"] == version
    assert metadata["License-Expression"] == "GPL-3.0-or-later"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert "GNU GENERAL PUBLIC LICENSE" in license_text and "Version 3" in license_text
    assert metadata.get_all("Project-URL")
    # [bridge] adds nothing; nothing of ours pulls niquests or urllib3-future
    requires = " ".join(metadata.get_all("Requires-Dist"))
    assert "niquests" not in requires and "urllib3-future" not in requires
    assert "extra == 'bridge'" not in requires


def test_installed_wheel_keeps_stock_urllib3_and_answers_version(venv, dist):
    python = venv / "bin" / "python"
    listed = run(python, "-m", "pip", "list", "--format=freeze", cwd=dist["work"]).lower()
    assert "urllib3-future" not in listed and "niquests" not in listed
    stock = next(
        line.split("==")[1] for line in listed.splitlines() if line.startswith("urllib3==")
    )
    loaded = run(python, "-I", "-c", "import urllib3; print(urllib3.__version__)", cwd=dist["work"])
    assert loaded.strip() == stock
    version = version_in_source()
    assert run(venv / "bin" / "meetplugin", "--version", cwd=dist["work"]).strip() == (
        f"meetplugin {version}"
    )
    assert run(venv / "bin" / "meetplugin-bridge", "--version", cwd=dist["work"]).strip() == (
        f"meetplugin-bridge {version}"
    )
    # the [bridge] extra installs nothing more
    extra = run(python, "-m", "pip", "install", f"{dist['wheel']}[bridge]", cwd=dist["work"])
    assert "Successfully installed" not in extra, extra


def test_radicale_from_the_venv_puts_a_jitsi_link_into_the_event(venv, dist, tmp_path):
    python = venv / "bin" / "python"
    where = run(
        python, "-I", "-c", "import radicale_meetplugin as m; print(m.__file__)", cwd=tmp_path
    )
    assert where.startswith(str(venv)), where  # the wheel's copy, not the checkout's
    # docs/install.md: [storage] type = radicale_meetplugin, meetplugin_config = the example
    with tarfile.open(dist["sdist"]) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("/config/meetplugin.conf"))
        example = archive.extractfile(member).read().decode()
    server = RadicaleServer(tmp_path / "radicale", example, python=(str(python), "-I")).start()
    try:
        server.ensure_user("alice")
        uid = f"{uuid.uuid4()}@test"
        path = f"alice/calendar/{uid}.ics"
        assert server.put("alice", path, event(uid, location="Переговорная 5; jitsi")).ok
        stored = icalendar.Calendar.from_ical(server.get("alice", path).text)
        (vevent,) = stored.walk("VEVENT")
        location = str(vevent["LOCATION"])
        assert location.startswith("Переговорная 5; https://meet.jit.si/Meet"), location
        assert str(vevent["CONFERENCE"]) == location.split("; ")[1]
        assert "=== Видеовстреча ===" in str(vevent["DESCRIPTION"])
        assert "meetplugin: config" in server.log
    finally:
        server.stop()
    assert "Traceback" not in server.log, server.log[-3000:]
