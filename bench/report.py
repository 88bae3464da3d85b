"""Collects sections while the bench runs, prints them, and writes docs/PERFORMANCE.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def markdown(self) -> str:
        out = ["| " + " | ".join(self.headers) + " |", "|" + "|".join("---" for _ in self.headers) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(out)


@dataclass
class Target:
    what: str
    target: str
    measured: str
    met: bool | None  # None: not measured
    why: str = ""


@dataclass
class Section:
    title: str
    intro: str = ""
    blocks: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.blocks.append(text)

    def table(self, t: Table) -> None:
        self.blocks.append(t.markdown())

    def markdown(self) -> str:
        parts = [f"## {self.title}"]
        if self.intro:
            parts.append(self.intro)
        parts += self.blocks
        return "\n\n".join(parts)


@dataclass
class Report:
    header: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def section(self, title: str, intro: str = "") -> Section:
        s = Section(title, intro)
        self.sections.append(s)
        return s

    def targets_markdown(self) -> str:
        t = Table(["Target", "Goal", "Measured", "Result"])
        for x in self.targets:
            verdict = "not measured" if x.met is None else ("met" if x.met else "**missed**")
            t.rows.append([x.what, x.target, x.measured, verdict + (f": {x.why}" if x.why else "")])
        return "## Targets\n\n" + t.markdown()

    def markdown(self) -> str:
        parts = ["\n".join(self.header), self.targets_markdown()] + [s.markdown() for s in self.sections]
        return "\n\n".join(parts).rstrip() + "\n"

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.markdown(), encoding="utf-8")


def _split_sections(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(what precedes the first '## ', [(title, whole section text)])."""
    chunks = text.split("\n## ")
    head, rest = chunks[0], chunks[1:]
    return head, [(c.split("\n", 1)[0].strip(), "## " + c.rstrip("\n")) for c in rest]


def merge_part(existing: str, new: Report, titles: set[str], target_prefix: str, note: str) -> str:
    """`existing` (a full report) with the sections named in `titles` and the targets starting with
    `target_prefix` taken from `new` (a run of one part), and `note` as a header line saying so."""
    head, sections = _split_sections(existing)
    fresh = {sec.title: sec.markdown() for sec in new.sections if sec.title in titles}
    marker = note.split(":", 1)[0]
    lines = [ln for ln in head.rstrip("\n").splitlines() if not ln.startswith(marker)]
    run_at = next((i for i, ln in enumerate(lines) if ln.startswith("- Run:")), len(lines) - 1)
    lines.insert(run_at + 1, note)
    out = ["\n".join(lines)]
    for title, text in sections:
        if title == "Targets":
            out.append(_merge_targets(text, [t for t in new.targets if t.what.startswith(target_prefix)]))
        else:
            out.append(fresh.pop(title, text))
    out += list(fresh.values())
    return "\n\n".join(out).rstrip() + "\n"


def _merge_targets(text: str, targets: list[Target]) -> str:
    rows = Report(targets=targets).targets_markdown().splitlines()[4:]  # past the heading and the table head
    by_what = {r.split(" | ", 1)[0]: r for r in rows}
    kept = []
    for line in text.splitlines():
        key = line.split(" | ", 1)[0]
        kept.append(by_what.pop(key, line))
    table_end = max(i for i, ln in enumerate(kept) if ln.startswith("|"))
    return "\n".join(kept[:table_end + 1] + list(by_what.values()) + kept[table_end + 1:])
