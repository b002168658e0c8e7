"""Human-written notes of a result folder (`RESULTS_DIR/notes.md`), placed under the matching plots.

A `## KEY` heading starts a section; the report puts the section whose KEY matches a figure or
section key (`summary`, `throughput`, `latency`, `over-time`, `failures`, `resources`, `saturation`,
`raw`, `conclusions`) right under it. Text before the first heading is an introduction.
"""

from __future__ import annotations

from pathlib import Path

NOTES = "notes.md"


def read(folder: Path) -> dict[str, str]:
    """KEY → Markdown text ("" → the introduction); {} when there are no notes."""
    path = folder / NOTES
    if not path.is_file():
        return {}
    sections: dict[str, list[str]] = {"": []}
    key = ""
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            key = line[3:].strip().lower()
            sections.setdefault(key, [])
        else:
            sections[key].append(line)
    return {k: "\n".join(v).strip() for k, v in sections.items() if "\n".join(v).strip()}
