"""What the README and docs/ name exists: every repository path in backticks, every `make`
target, every `python -m crm` command and every environment variable (read somewhere in the
code). A doc that names a file, command or setting that was renamed or removed fails here.

Checked by hand: renaming `55_bank_disputes.sql` in docs/FEATURES.md to `56_bank_disputes.sql`,
`make bench-send` to `make bench-sends`, `crm doctor` to `crm doktor` or `RECONCILE_INTERVAL_S`
to `RECONCILE_INTERVAL` each fails it with that name.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

from ops.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Backticked spans and fenced code blocks: where the docs name files, commands and settings.
_FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)
_SPAN = re.compile(r"`([^`\n]+)`")
_ENV = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
# Written by the running system or a user, never in a clone: named, not shipped.
_RUNTIME = (".data/", "./.data/", ".venv/", "exports/", "tests/artifacts/")
# Source files named by their bare name must exist somewhere in the repository.
_SOURCE_SUFFIXES = (".py", ".sql", ".md", ".lock", ".toml", ".html", ".txt")


@cache
def tracked() -> tuple[str, ...]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return tuple(line for line in out.splitlines() if (ROOT / line).exists()) + tuple(
        str(p.relative_to(ROOT)) for p in ROOT.glob("docs/*.md"))


def _top_level() -> set[str]:
    return {p.split("/", 1)[0] for p in tracked()}


def named(doc: Path) -> list[str]:
    """Every backticked span and every line of a fenced block in the doc."""
    text = doc.read_text(encoding="utf-8")
    lines = [ln for block in _FENCE.findall(text) for ln in block.splitlines()]
    return _SPAN.findall(_FENCE.sub("", text)) + lines


def _as_glob(path: str) -> str:
    """Placeholders (NNNN, NN, <id>, *) as glob wildcards."""
    path = re.sub(r"<[^>]*>", "*", path)
    return re.sub(r"N{2,}(_[a-z]+)?", "*", path)


def path_problem(token: str) -> str | None:
    token = token.strip().split("::", 1)[0].rstrip(".,:;")
    if " " in token or "://" in token or token.startswith(_RUNTIME) or "=" in token:
        return None
    first = token.split("/", 1)[0]
    module, _, symbol = token.rpartition(".")
    if "/" in module and first in _top_level() and symbol.isidentifier() and not token.endswith(_SOURCE_SUFFIXES):
        # `path/module.name`: a name defined in that module.
        source = ROOT / f"{module}.py"
        if source.exists() and re.search(rf"\b{re.escape(symbol)}\b", source.read_text(encoding="utf-8")):
            return None
        return f"`{token}` does not exist"
    if "/" in token and first in _top_level():
        pattern = _as_glob(token.rstrip("/"))
        if any(Path(p).match(pattern) or p.startswith(pattern + "/") for p in tracked()) or list(ROOT.glob(pattern)):
            return None
        return f"`{token}` does not exist"
    if "/" not in token and token.endswith(_SOURCE_SUFFIXES) and re.fullmatch(r"[\w.*-]+", token):
        pattern = _as_glob(token)
        if any(Path(p).match(pattern) for p in tracked()):
            return None
        return f"`{token}` is no file in the repository"
    return None


@cache
def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][\w-]*):", text, re.M))


@cache
def crm_commands() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return set(sub.choices)  # type: ignore[arg-type]


@cache
def code_text() -> str:
    """Every file that can read a setting: Python, the Makefile, CI, Streamlit's config."""
    parts = [(ROOT / p).read_text(encoding="utf-8", errors="replace") for p in tracked()
             if p.endswith((".py", ".toml", ".sql")) or p in ("Makefile", ".ci/run")]
    return "\n".join(parts)


def command_problems(token: str) -> list[str]:
    problems = []
    for target in re.findall(r"(?:^|[\s;&(])make ((?:[a-z][\w-]*\s*)+)", token):
        for name in target.split():
            if name not in make_targets():
                problems.append(f"`make {name}` is no target in the Makefile")
    for name in re.findall(r"(?:python -m |^)crm ([a-z][\w-]*)", token):
        if name not in crm_commands():
            problems.append(f"`python -m crm {name}` is no command (ops/cli.py)")
    return problems


def env_problem(token: str) -> str | None:
    name = token.strip().split("=", 1)[0].strip()
    if not _ENV.match(name):
        return None
    if re.search(rf"""["']{name}["']|\b{name}=|\${{?{name}\b""", code_text()):
        return None
    return f"`{name}` is read nowhere in the code"


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(ROOT)))
def test_every_file_command_and_setting_the_docs_name_exists(doc: Path) -> None:
    problems: list[str] = []
    for token in named(doc):
        for word in [token] if "\n" in token else token.split():
            problem = path_problem(word) or env_problem(word)
            if problem:
                problems.append(problem)
        problems += command_problems(token)
    found = sorted(set(problems))
    assert not found, f"{doc.relative_to(ROOT)} names what does not exist:\n" + "\n".join(found)


def test_the_readme_is_a_newcomer_page_and_ci_runs_its_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    for section in ("## Two commands", "## Demo walkthrough"):
        assert section in readme
    assert "make test" in readme and re.search(r"^make test\b", (ROOT / ".ci/run").read_text(), re.M)


def test_the_data_section_names_every_sql_functions_file() -> None:
    """docs/FEATURES.md lists the functions files by concern; a new one is listed there too."""
    features = (ROOT / "docs" / "FEATURES.md").read_text(encoding="utf-8")
    missing = [p.stem for p in sorted((ROOT / "db" / "functions").glob("*.sql")) if f"`{p.stem}`" not in features]
    assert missing == [], f"docs/FEATURES.md (Data) does not list {missing}"
