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
