"""The lock files `make` installs from (pip --require-hashes) pin every requirement we name,
within its range, with hashes: a requirement added without `make lock` fails here, not on a
fresh machine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s\\]+)", re.MULTILINE)


def _requirements(path: Path) -> list[Requirement]:
    found: list[Requirement] = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            found.extend(_requirements(path.parent / line[3:].strip()))
        else:
            found.append(Requirement(line))
    return found


@pytest.mark.parametrize(("source", "lock"), [("requirements.txt", "requirements.lock"),
                                               ("requirements-dev.txt", "requirements-dev.lock"),
                                               ("requirements-bootstrap.txt", "requirements-bootstrap.lock")])
def test_every_requirement_is_pinned_in_its_lock_within_its_range(source: str, lock: str) -> None:
    text = (ROOT / lock).read_text()
    pins = {canonicalize_name(name): version for name, version in _PIN.findall(text)}
    problems = []
    for req in _requirements(ROOT / source):
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None:
            problems.append(f"{req.name} is not in {lock} (run `make lock`)")
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{req.name}=={pinned} in {lock} is outside {req.specifier}")
    assert problems == []
    for block in re.split(r"\n(?=[A-Za-z0-9._-]+==)", text.split("\n", 1)[1]):
        if "==" in block.split("\n", 1)[0]:
            assert "--hash=sha256:" in block, f"no hash for {block.splitlines()[0]}"
