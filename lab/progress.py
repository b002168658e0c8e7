"""Live progress of a study in the terminal: rich when installed, plain lines otherwise.

The runner calls `begin`, then for each cell `cell_started`, `live` (about once a second while load
runs, with the current users, throughput, p99 and failures) and `cell_finished`, then `end`.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol

from lab.results import Cell


class Progress(Protocol):
    def begin(self, total: int, title: str) -> None: ...
    def cell_started(self, cell_id: str) -> None: ...
    def live(self, text: str) -> None: ...
    def cell_finished(self, cell: Cell) -> None: ...
    def note(self, text: str) -> None: ...
    def end(self) -> None: ...


def outcome(cell: Cell) -> str:
    """One line about a finished cell."""
    if cell.status != "ok":
        return f"{cell.status}: {cell.reason}"
    s = cell.summary
    if not s:
        return "ok"
    rps = s.get("rps")
    p99 = s.get("p99_ms")
    return (
        (f"{rps:,.0f} req/s" if rps is not None else "? req/s")
        + (f", p99 {p99:,.0f} ms" if p99 is not None else "")
        + f", {s.get('failures', 0)} failed of {s.get('requests', 0):,}"
    )


class PlainProgress:
    """Lines on stdout: one when a cell starts, one when it ends."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self.total = 0
        self.done = 0
        self.started = time.monotonic()

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def begin(self, total: int, title: str) -> None:
        self.total = total
        self._print(f"{title}: {total} cells")

    def cell_started(self, cell_id: str) -> None:
        self._print(f"[{self.done + 1}/{self.total}] {cell_id} …")

    def live(self, text: str) -> None:
        return

    def cell_finished(self, cell: Cell) -> None:
        self.done += 1
        self._print(f"[{self.done}/{self.total}] {cell.id}: {outcome(cell)}")

    def note(self, text: str) -> None:
        self._print(text)

    def end(self) -> None:
        self._print(f"done in {time.monotonic() - self.started:.0f} s")


class RichProgress:
    """A progress bar with the current cell and its live numbers, and a line per finished cell."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console()
        self.progress = Progress(
            TextColumn("[bold]{task.fields[cell]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[live]}"),
            console=self.console,
        )
        self.task: Any = None

    def begin(self, total: int, title: str) -> None:
        self.console.print(f"[bold]{title}[/bold]: {total} cells")
        self.progress.start()
        self.task = self.progress.add_task("cells", total=total, cell="", live="")

    def cell_started(self, cell_id: str) -> None:
        self.progress.update(self.task, cell=cell_id, live="starting")

    def live(self, text: str) -> None:
        self.progress.update(self.task, live=text)

    def cell_finished(self, cell: Cell) -> None:
        style = {"ok": "green", "failed": "red", "unavailable": "yellow"}.get(cell.status, "dim")
        self.progress.console.print(f"[{style}]{cell.id}[/{style}]: {outcome(cell)}")
        self.progress.advance(self.task)

    def note(self, text: str) -> None:
        self.progress.console.print(text)

    def end(self) -> None:
        self.progress.update(self.task, cell="done", live="")
        self.progress.stop()


def make(plain: bool = False) -> Progress:
    """Rich when importable (and not asked for plain), else plain lines."""
    if not plain:
        try:
            return RichProgress()
        except ImportError:
            pass
    return PlainProgress()
