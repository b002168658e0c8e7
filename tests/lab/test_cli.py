"""The command line: validate, list, report; and the --quick smoke run when Locust is installed."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab.cli import main
from lab.results import ResultFolder, validate

HAS_LOCUST = importlib.util.find_spec("locust") is not None


def test_validate_and_list(smoke_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(smoke_folder)]) == 0
    assert "valid" in capsys.readouterr().out
    broken = tmp_path / "broken"
    shutil.copytree(smoke_folder, broken)
    (broken / "environment.json").unlink()
    assert main(["validate", str(broken)]) == 1
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "wsgiref" in out and "tricorn-hybrid-w2" in out and "studies:" in out


def test_report_command(smoke_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(smoke_copy)]) == 0
    out = capsys.readouterr().out.split()
    assert out == [str(smoke_copy / "report" / "report.md"), str(smoke_copy / "report" / "report.html")]


def test_run_without_locust_says_what_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lab import availability

    real = availability.module_present
    monkeypatch.setattr(availability, "module_present", lambda name: name != "locust" and real(name))
    assert main(["run", "--study", "smoke", "--quick"]) == 2
    assert "pip install -r lab/requirements.txt" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(
    not HAS_LOCUST,
    reason="Locust is not installed (pip install -r lab/requirements.txt): the --quick smoke run needs it",
)
def test_quick_smoke_run(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "smoke"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lab",
            "run",
            "--study",
            "smoke",
            "--quick",
            "--plain",
            "--deployments",
            "wsgiref",
            "--workloads",
            "hello,ramp",
            "--out",
            str(out),
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "check: every cell that ran served its workload without failures" in done.stdout
    assert validate(out) == []
    ran = [c for c in ResultFolder(out).cells() if c.status == "ok"]
    assert {(c.workload, c.scenario) for c in ran} >= {("hello", "steady"), ("ramp", "steady")}
    assert (out / "report" / "report.html").stat().st_size > 50_000
    assert (out / "report" / "throughput.png").is_file() and (out / "report" / "saturation.png").is_file()


def test_plain_progress_lines() -> None:
    import io

    from lab.progress import PlainProgress, outcome
    from lab.results import Cell

    stream = io.StringIO()
    progress = PlainProgress(stream)
    progress.begin(2, "study x")
    progress.cell_started("a__hello__steady")
    progress.live("ignored by the plain display")
    done = Cell(
        "a",
        "hello",
        "steady",
        "locust",
        summary={"rps": 1234.5, "p99_ms": 7.0, "failures": 0, "requests": 5000},
    )
    progress.cell_finished(done)
    progress.cell_finished(Cell("b", "hello", "steady", "locust", status="unavailable", reason="not built"))
    lines = stream.getvalue().splitlines()
    assert lines[:4] == [
        "study x: 2 cells",
        "[1/2] a__hello__steady …",
        "[1/2] a__hello__steady: 1,234 req/s, p99 7 ms, 0 failed of 5,000",
        "[2/2] b__hello__steady: unavailable: not built",
    ]
    assert outcome(Cell("c", "w", "s", "wrk")) == "ok"
