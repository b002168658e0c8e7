"""Process facts from Linux /proc: the process tree, CPU time, RSS and PSS — no dependencies.

All readers return None (or skip the process) when a process vanished between listing and reading:
processes come and go during load (a killed worker, a reload), and that is data, not an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/PID/stat the lab uses."""

    pid: int
    comm: str
    ppid: int
    cpu_seconds: float  # user + system
    rss_bytes: int


def read_stat(pid: int) -> ProcStat | None:
    """Parse /proc/PID/stat (comm may contain spaces and parentheses: split at the last ')')."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    left, _, right = raw.rpartition(")")
    comm = left.partition("(")[2]
    fields = right.split()
    # fields[0] is field 3 (state): ppid=4, utime=14, stime=15, rss=24 (1-based)
    try:
        ppid = int(fields[1])
        ticks = int(fields[11]) + int(fields[12])
        rss_pages = int(fields[21])
    except (IndexError, ValueError):
        return None
    return ProcStat(pid, comm, ppid, ticks / CLOCK_TICKS, rss_pages * PAGE_SIZE)


def read_pss(pid: int) -> int | None:
    """Proportional set size in bytes (shared pages divided among sharers), from smaps_rollup."""
    try:
        with open(PROC / str(pid) / "smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def all_parents() -> dict[int, int]:
    """pid → ppid for every process visible now."""
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name))
            if stat is not None:
                parents[stat.pid] = stat.ppid
    return parents


def descendants(root: int, parents: dict[int, int] | None = None) -> dict[int, int]:
    """Every live descendant of `root` → its depth below root (children are 1). Root excluded."""
    table = all_parents() if parents is None else parents
    children: dict[int, list[int]] = {}
    for pid, ppid in table.items():
        children.setdefault(ppid, []).append(pid)
    found: dict[int, int] = {}
    frontier = [(root, 0)]
    while frontier:
        pid, depth = frontier.pop()
        for child in children.get(pid, ()):
            if child not in found:
                found[child] = depth + 1
                frontier.append((child, depth + 1))
    return found


def alive(pid: int) -> bool:
    """True while /proc/PID exists and is not a zombie."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return raw.rpartition(")")[2].split()[:1] != ["Z"]
