"""Rendering the stored result folder: the expected tables, PNG files that open and have a real size,
a self-contained HTML page, and notes placed under their plots."""

from __future__ import annotations

import base64
import dataclasses
import re
import shutil
import struct
from pathlib import Path

import matplotlib.image
import pytest

from lab import report
from lab.cell import CellContext, run_cell
from lab.deployments import reference
from lab.results import ResultFolder, read_json, write_json

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"

EXPECTED_PNGS = {
    "throughput.png",
    "latency.png",
    "over-time-hello.png",
    "over-time-websocket.png",
    "over-time-ramp.png",
    "faults.png",
    "cpu.png",
    "memory.png",
    "saturation.png",
    "raw.png",
}


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def table(markdown: str, header_start: str) -> list[list[str]]:
    """Rows of the Markdown table whose header line starts with `header_start`."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> report.Rendered:
    target = tmp_path_factory.mktemp("rendered") / "smoke"
    shutil.copytree(DATA / "smoke", target)
    return report.render(target)


@pytest.fixture(scope="module")
def customised(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The stored folder plus notes.md and one unavailable cell, rendered against uvicorn: its Markdown."""
    from lab import availability, studies
    from lab.workloads import by_name

    target = tmp_path_factory.mktemp("customised") / "smoke"
    shutil.copytree(DATA / "smoke", target)
    (target / "notes.md").write_text(
        "Ran on a test box.\n\n## throughput\nUvicorn leads on **hello**.\n\n"
        "## conclusions\n- async wins here\n- sync is the floor\n"
    )
    folder = ResultFolder(target)
    ctx = CellContext(folder, studies.get("smoke").quick(), "python3", REPO, "127.0.0.1", 1, None, "n/a")
    missing = dataclasses.replace(reference()[0], name="tricorn-future", argv=("tricorn-not-built-yet", "x"))
    cell = run_cell(ctx, missing, availability.check(missing), by_name()["hello"], "steady", lambda _: None)
    manifest = read_json(target / "manifest.json")
    manifest["cells"].append(cell.id)
    write_json(target / "manifest.json", manifest)
    return report.render(target, baseline="uvicorn").markdown.read_text()


def test_pngs_are_written_and_open(rendered: report.Rendered) -> None:
    assert {p.name for p in rendered.images} == EXPECTED_PNGS
    for path in rendered.images:
        assert path.parent == rendered.markdown.parent and path.stat().st_size > 10_000, path.name
        width, height = png_size(path)
        assert width >= 600 and height >= 150, (path.name, width, height)
        pixels = matplotlib.image.imread(path)  # decodes the whole image
        assert pixels.shape[:2] == (height, width)
        assert pixels.std() > 0.01, f"{path.name} is blank"


def test_summary_table_has_every_steady_cell_with_ratios(rendered: report.Rendered) -> None:
    md = rendered.markdown.read_text()
    rows = table(md, "| workload | deployment | model | req/s")
    assert {(r[0], r[1]) for r in rows} == {
        ("hello", "tricorn-sync-w2"),
        ("hello", "tricorn-hybrid-w2"),
        ("hello", "uvicorn"),
        ("hello", "wsgiref"),
        ("websocket", "tricorn-hybrid-w2"),
        ("websocket", "uvicorn"),
        ("ramp", "tricorn-sync-w2"),
        ("ramp", "tricorn-hybrid-w2"),
        ("ramp", "uvicorn"),
        ("ramp", "wsgiref"),
    }
    hello = {r[1]: r for r in rows if r[0] == "hello"}
    assert hello["wsgiref"][10] == "1.00×"  # the smoke study's baseline
    assert hello["uvicorn"][3] == "1,743" and hello["uvicorn"][6] == "14"
    assert "Ratios are against **wsgiref**." in md
    ws = {r[1]: r for r in rows if r[0] == "websocket"}
    assert ws["tricorn-hybrid-w2"][7] == "100.00" and ws["uvicorn"][7] == "0.00"


def test_other_tables(rendered: report.Rendered) -> None:
    md = rendered.markdown.read_text()
    raw = table(md, "| workload | deployment | req/s | p50 ms")
    assert {r[1] for r in raw} == {"tricorn-sync-w2", "tricorn-hybrid-w2", "uvicorn", "wsgiref"}
    saturation = table(md, "| deployment | model | saturation req/s")
    assert len(saturation) == 4 and all(r[2:4] == ["not reached", "—"] for r in saturation)
    assert {r[0]: r[4] for r in saturation}["uvicorn"] == "506"  # the best step's throughput
    failures = table(md, "| deployment | workload | scenario | most frequent error")
    assert all(r[3].startswith("WebSocketBadStatusException") and r[6] == "100.00" for r in failures)
    assert {(r[0], r[1], r[2]) for r in failures} == {
        ("tricorn-hybrid-w2", "websocket", "steady"),
        ("tricorn-hybrid-w2", "websocket", "kill9"),
    }
    faults = table(md, "| deployment | scenario | events | failed | requests")
    assert [r[0] for r in faults] == ["tricorn-sync-w2", "tricorn-hybrid-w2", "tricorn-hybrid-w2"]
    assert faults[0][2].startswith("2.") and "s kill9: SIGKILL worker pid" in faults[0][2]
    assert "respawned: 2 workers again" in faults[0][2]
    not_run = table(md, "| deployment | status | reason | cells")
    assert [
        "wsgiref",
        "not-applicable",
        "this server has no WebSocket support",
        "websocket/steady, websocket/kill9",
    ] in not_run
    for section in (
        "## About this run",
        "## Summary",
        "## Throughput",
        "## Latency",
        "## Over time",
        "## Failures",
        "## Resources",
        "## Saturation",
        "## Raw throughput (wrk)",
        "## Cells that did not run",
        "## Conclusions",
        "## Reproduce",
    ):
        assert section in md
    for png in EXPECTED_PNGS:
        assert f"]({png})" in md


def test_html_is_self_contained(rendered: report.Rendered) -> None:
    page = rendered.html.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == len(EXPECTED_PNGS)
    assert all(base64.b64decode(data)[:4] == b"\x89PNG" for data in images)
    assert not re.search(r'(src|href)="(?!data:)', page), "the page must not load anything"
    assert "<table>" in page and "tricorn-hybrid-w2" in page


def test_notes_go_under_their_plots(customised: str) -> None:
    md = customised
    assert md.index("Uvicorn leads on **hello**.") > md.index("](throughput.png)") > md.index("## Throughput")
    assert md.index("- async wins here") > md.index("## Conclusions")
    assert "Ran on a test box." in md.split("## Summary")[0]
    assert "No conclusions written" not in md


def test_baseline_override_and_fallback(customised: str, smoke_folder: Path) -> None:
    assert "Ratios are against **uvicorn**." in customised
    hello = {r[1]: r for r in table(customised, "| workload | deployment | model | req/s") if r[0] == "hello"}
    assert hello["uvicorn"][10] == "1.00×" and hello["wsgiref"][10] == "0.41×"
    fallback = report.ReportData(smoke_folder, baseline="gunicorn-sync-w9")
    assert fallback.baseline == "uvicorn"  # the first peer that ran
    assert "the requested baseline 'gunicorn-sync-w9' did not run here" in fallback.baseline_note


def test_an_unavailable_deployment_is_reported(customised: str) -> None:
    row = next(
        r for r in table(customised, "| deployment | status | reason | cells") if r[0] == "tricorn-future"
    )
    assert row[1:] == [
        "unavailable",
        "command 'tricorn-not-built-yet' not found (not installed, or not built yet)",
        "hello/steady",
    ]
