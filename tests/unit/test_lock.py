"""One lock for everything: pyproject.toml, requirements.lock, the images and this venv agree.

``make lock`` regenerates the lock and the images' requirements from pyproject.toml;
``make install`` syncs the venv to the lock. Each failure here names the command that fixes it.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"
IMAGES = REPO / "deploy" / "k8s" / "images"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
RELOCK = "run `make lock` and commit requirements.lock and deploy/k8s/images/*/requirements.txt"


def _pins(path: Path) -> dict[str, str]:
    """``name -> version`` of every ``name==version`` line of a uv-compiled requirements file."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if match := PIN.match(line):
            pins[canonicalize_name(match[1])] = match[2]
    return pins


def _hashed(path: Path) -> bool:
    """Every pinned requirement carries at least one ``--hash``."""
    blocks = re.split(r"\n(?=[A-Za-z0-9])", path.read_text())
    return all("--hash=sha256:" in block for block in blocks if PIN.match(block))


def _public(version: str) -> Version:
    """The version without its local label: torch's ``2.13.0+cpu`` is PyPI's ``2.13.0`` rebuilt."""
    return Version(Version(version).public)


def _declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += extra
    return [Requirement(text) for text in declared]


@pytest.fixture(scope="module")
def lock() -> dict[str, str]:
    assert LOCK.exists(), f"no {LOCK.name}: {RELOCK}"
    return _pins(LOCK)


def test_the_lock_is_generated_by_uv_from_pyproject_with_hashes(lock):
    header = LOCK.read_text().splitlines()[:3]
    assert any("uv pip compile pyproject.toml --all-extras --generate-hashes" in line for line in header), (
        f"{LOCK.name} was not written by `make lock`: {RELOCK}"
    )
    assert _hashed(LOCK), f"{LOCK.name} has a requirement without a hash: {RELOCK}"
    assert len(lock) > 50  # the whole tree, not only the direct dependencies


def test_every_declared_dependency_is_locked_within_its_range(lock):
    problems = []
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        if name not in lock:
            problems.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(_public(lock[name]), prereleases=True):
            problems.append(f"{requirement} but the lock has {lock[name]}")
    assert not problems, f"pyproject.toml and {LOCK.name} disagree ({RELOCK}): {problems}"


@pytest.mark.parametrize("image", ["gateway", "triton"])
def test_images_install_the_locked_versions_with_hashes(lock, image):
    requirements = IMAGES / image / "requirements.txt"
    pins = _pins(requirements)
    assert pins, f"{requirements} pins nothing: {RELOCK}"
    assert _hashed(requirements), f"{requirements} has a requirement without a hash: {RELOCK}"
    differ = {
        name: (version, lock[name])
        for name, version in pins.items()
        if name in lock and _public(version) != _public(lock[name])
    }
    assert not differ, f"{requirements} differs from {LOCK.name} (image, lock): {differ}; {RELOCK}"


def test_the_gateway_image_is_exactly_the_locked_runtime_closure(lock):
    """Compiled for the same platform from the same lock: every pin is the lock's, byte for byte,
    and the image has every runtime dependency pyproject.toml declares."""
    pins = _pins(IMAGES / "gateway" / "requirements.txt")
    assert {name: lock.get(name) for name in pins} == pins, RELOCK
    runtime = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    missing = [text for text in runtime if canonicalize_name(Requirement(text).name) not in pins]
    assert not missing, f"the gateway image lacks {missing}: {RELOCK}"


def test_the_triton_image_installs_the_server_the_tests_run(lock):
    pins = _pins(IMAGES / "triton" / "requirements.txt")
    assert pins["nvidia-pytriton"] == lock["nvidia-pytriton"]
    assert _public(pins["torch"]) == _public(lock["torch"])


def test_this_environment_is_the_lock(lock):
    """What the tests run is what the lock says: ``make install`` syncs exactly, nothing more."""
    installed = {
        canonicalize_name(dist.metadata["Name"]): dist.version for dist in importlib.metadata.distributions()
    }
    differ = {name: (installed.get(name), version) for name, version in lock.items() if installed.get(name) != version}
    assert not differ, f"the venv differs from {LOCK.name} (installed, locked): {differ}; run `make install`"
    extra = set(installed) - set(lock) - {"tollgate"}
    assert not extra, f"the venv has packages the lock does not: {sorted(extra)}; run `make install`"
