"""Each package builds a wheel and an sdist, and installs alone in a fresh virtual environment.

`python -m build` builds the sdist first and the wheel *from that sdist*, so a passing build also
proves the core sdist carries its C sources. The installs use the local index only for third-party
dependencies (cffi); our own packages come from the freshly built files.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "wsgi", "asgi", "arbiter")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    for name in PACKAGES:
        subprocess.run(
            [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT / "packages" / name)],
            check=True, capture_output=True, text=True,
        )
    return out


def fresh_venv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return path / "bin" / "python"


def pip_install(python: Path, dist: Path, *names: str) -> None:
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--find-links", str(dist), *names],
        check=True, capture_output=True, text=True,
    )


def installed(python: Path) -> set[str]:
    out = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"],
                         check=True, capture_output=True, text=True).stdout
    return {line.split("==")[0].lower() for line in out.splitlines() if line}


def test_every_package_builds_a_wheel_and_an_sdist(dist: Path) -> None:
    names = {p.name for p in dist.iterdir()}
    for name in PACKAGES:
        assert any(n.startswith(f"tricorn_{name}-") and n.endswith(".whl") for n in names), names
        assert any(n.startswith(f"tricorn_{name}-") and n.endswith(".tar.gz") for n in names), names


def test_core_sdist_carries_its_c_sources(dist: Path) -> None:
    (sdist,) = dist.glob("tricorn_core-*.tar.gz")
    with tarfile.open(sdist) as tar:
        members = {Path(m).name for m in tar.getnames()}
    assert {"tricorn_http.c", "tricorn_http.h", "build_ffi.py", "setup.py"} <= members


def test_no_wheel_ships_a_namespace_init(dist: Path) -> None:
    import zipfile

    for wheel in dist.glob("*.whl"):
        with zipfile.ZipFile(wheel) as zf:
            assert "tricorn/__init__.py" not in zf.namelist(), wheel.name


def test_core_installs_alone_and_parses(dist: Path, tmp_path: Path) -> None:
    python = fresh_venv(tmp_path / "core")
    pip_install(python, dist, "tricorn-core")
    assert {"tricorn-core", "cffi"} <= installed(python)
    assert not {"tricorn-wsgi", "tricorn-asgi", "tricorn-arbiter"} & installed(python)
    code = (
        "from tricorn.core.parser import HeadParser\n"
        "from tricorn.core.limits import ParserLimits\n"
        "r = HeadParser(ParserLimits()).parse(b'GET /x HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n')\n"
        "assert r.target == b'/x' and r.headers == [(b'host', b'a')], r\n"
        "import importlib.util\n"
        "assert importlib.util.find_spec('tricorn.wsgi') is None\n"
        "print('ok')\n"
    )
    out = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("name", ["wsgi", "asgi", "arbiter"])
def test_server_package_pulls_only_core(dist: Path, tmp_path: Path, name: str) -> None:
    python = fresh_venv(tmp_path / name)
    pip_install(python, dist, f"tricorn-{name}")
    ours = {n for n in installed(python) if n.startswith("tricorn-")}
    assert ours == {f"tricorn-{name}", "tricorn-core"}
    subprocess.run([str(python), "-c", f"import tricorn.{name}, tricorn.core.connection"],
                   check=True, cwd=tmp_path)
