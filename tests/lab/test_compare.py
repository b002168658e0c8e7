"""compare A B: ratios per matching cell, overlay plots, regressions flagged."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from lab import compare
from lab.cli import main
from lab.results import read_json, write_json


def slow_down(folder: Path, cell: str, factor: float) -> None:
    """Make a cell's whole-run numbers `factor` times slower (req/s divided, percentiles multiplied)."""
    path = folder / "cells" / cell / "locust_stats.csv"
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    for row in rows[1:]:
        row[header.index("Requests/s")] = str(float(row[header.index("Requests/s")]) / factor)
        for label in ("50%", "95%", "99%"):
            row[header.index(label)] = str(float(row[header.index(label)]) * factor)
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def test_a_folder_against_itself_has_no_regression(smoke_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    assert (
        main(["compare", str(smoke_folder), str(smoke_folder), "--fail-on-regression", "--out", str(out)])
        == 0
    )
    assert {p.name for p in out.iterdir()} == {
        "compare.md",
        "compare.html",
        "compare-rps.png",
        "compare-p99.png",
        "compare-over-time.png",
    }
    assert all(p.stat().st_size > 10_000 for p in out.glob("*.png"))
    md = (out / "compare.md").read_text()
    assert "17 cells ran in both; **0 regression(s)**, 0 improvement(s), 17 within ±10%" in md


def test_a_slower_cell_is_flagged(smoke_folder: Path, tmp_path: Path) -> None:
    b = tmp_path / "after"
    shutil.copytree(smoke_folder, b)
    slow_down(b, "uvicorn__hello__steady", 2.0)
    slow_down(b, "wsgiref__hello__steady", 0.8)  # faster: an improvement
    done = compare.render(smoke_folder, b, tolerance=0.10)
    assert done.markdown.parent == b / "compare-vs-smoke"
    assert done.regressions == ["uvicorn · hello · steady: req/s -50%, p99 +100%"]
    verdicts = {p.label: p.verdict for p in done.pairs}
    assert verdicts["wsgiref · hello · steady"] == "improvement"
    md = done.markdown.read_text()
    assert (
        "**REGRESSION** req/s -50%, p99 +100%" in md
        and "| uvicorn | hello | steady | 1,743 | 871 | 0.50× |" in md
    )
    assert (
        main(["compare", str(smoke_folder), str(b), "--fail-on-regression", "--out", str(tmp_path / "c2")])
        == 1
    )


def test_cells_in_one_folder_only_are_listed(smoke_folder: Path, tmp_path: Path) -> None:
    b = tmp_path / "b"
    shutil.copytree(smoke_folder, b)
    manifest = read_json(b / "manifest.json")
    manifest["cells"].remove("uvicorn__ramp__steady")
    write_json(b / "manifest.json", manifest)
    done = compare.render(smoke_folder, b, out=tmp_path / "cmp")
    assert "| uvicorn__ramp__steady | A only | ok / — |" in done.markdown.read_text()
    assert "## Conditions" in done.markdown.read_text()
