"""Run one cell: deployment × workload × scenario, from "is it applicable" to a written cell folder.

Order: decide applicability (unavailable / not-applicable cells are recorded with their reason and
nothing is started) → start the server (fresh for every cell) → readiness probe → warm-up → start the
sampler on the server's process tree → start the generator (Locust master + workers, or wrk) and
sample it too → inject the scenario's fault, if any → wait (bounded) → stop everything → write the
resource samples, the summary and cell.json. The server is stopped in every outcome.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab import analysis, locust_csv, results, server, wrk
from lab.availability import Availability, resolve_program
from lab.deployments import Deployment
from lab.faults import FaultSchedule, applicable
from lab.locust_run import LocustPlan, LocustRun
from lab.net import base_url
from lab.results import Cell, ResultFolder
from lab.sampler import Sampler, Watch, write_csv
from lab.studies import FAULT_SCENARIOS, Study
from lab.workloads import Workload


@dataclass(frozen=True)
class CellContext:
    """What every cell of a run shares."""

    folder: ResultFolder
    study: Study
    python: str
    repo: Path
    host: str
    seed: int
    upstream_url: str | None
    upstream_error: str | None = None


def not_runnable(
    deployment: Deployment, availability: Availability, workload: Workload, scenario: str, ctx: CellContext
) -> tuple[str, str] | None:
    """(status, reason) when the cell must not run, else None."""
    if not availability.available:
        return results.UNAVAILABLE, availability.reason or "unavailable"
    if workload.websocket and not deployment.websocket:
        return results.NOT_APPLICABLE, "this server has no WebSocket support"
    if scenario == "wrk":
        if workload.wrk_path is None:
            return results.NOT_APPLICABLE, "no raw wrk cell for this workload"
        if resolve_program("wrk", ctx.python) is None:
            return results.UNAVAILABLE, "wrk is not installed"
    if scenario in FAULT_SCENARIOS and workload.step:
        return results.NOT_APPLICABLE, "faults are injected under steady load, not during a step profile"
    if scenario in FAULT_SCENARIOS:
        why = applicable(scenario, deployment.forks_workers, deployment.reload_signal)
        if why:
            return results.NOT_APPLICABLE, why
    if workload.needs_upstream and ctx.upstream_url is None:
        return results.FAILED, f"the slow upstream did not start: {ctx.upstream_error}"
    return None


def _load_window(history: Path, fallback_start: float, fallback_end: float) -> tuple[float, float]:
    """From the first history second with users running to the last second with requests counted."""
    rows = [row for row in locust_csv.read_history(history) if row.users > 0 or row.total_requests > 0]
    if len(rows) < 2:
        return fallback_start, fallback_end
    return float(rows[0].timestamp), float(rows[-1].timestamp)


def _live_text(rows: list[locust_csv.HistoryRow]) -> str:
    if len(rows) < 2:
        return "starting load"
    a, b = rows[-2], rows[-1]
    rps = (b.total_requests - a.total_requests) / max(1, b.timestamp - a.timestamp)
    p99 = b.percentile("99%")
    return (
        f"{b.users} users  {rps:,.0f} req/s  p99 {p99:,.0f} ms  "
        if p99 is not None
        else f"{b.users} users  {rps:,.0f} req/s  "
    ) + f"{b.total_failures} failed"


def _locust_plan(ctx: CellContext, workload: Workload, url: str, cell_dir: Path) -> LocustPlan:
    study = ctx.study
    env = {"LAB_SEED": str(ctx.seed), "LAB_PERCENTILE_WINDOW_S": "2"}
    run_time = study.duration_s
    if workload.step:
        step = study.step
        # a step's percentiles come from its last second: let the window cover the step, less its start
        env["LAB_PERCENTILE_WINDOW_S"] = str(max(1, math.floor(step.step_s) - 1))
        env.update(
            LAB_STEP_START=str(step.start_users),
            LAB_STEP_USERS=str(step.step_users),
            LAB_STEP_S=f"{step.step_s:g}",
            LAB_STEP_MAX=str(step.max_users),
            LAB_STEP_USER_RPS=f"{step.user_rps:g}",
        )
        run_time = step.duration_s
    return LocustPlan(
        locustfile=workload.locustfile,
        user_class=workload.user_class,
        host_url=url,
        users=study.users,
        spawn_rate=study.spawn_rate,
        run_time_s=run_time,
        workers=study.locust_workers,
        csv_prefix=cell_dir / results.LOCUST_PREFIX,
        log_dir=cell_dir,
        env=env,
        shaped=workload.step,
    )


def _drive_locust(
    ctx: CellContext,
    cell: Cell,
    workload: Workload,
    running: server.RunningServer,
    sampler: Sampler,
    cell_dir: Path,
    live: Callable[[str], None],
) -> None:
    plan = _locust_plan(ctx, workload, base_url(running.host, running.port), cell_dir)
    run = LocustRun(plan, ctx.python, ctx.repo)
    cell.load = {
        "generator": "locust",
        "master_argv": run.master_command,
        "worker_argvs": run.worker_commands,
        "env": plan.env,
        "cwd": str(ctx.repo),
        "users": plan.users,
        "spawn_rate": plan.spawn_rate,
        "run_time_s": plan.run_time_s,
        "workers": plan.workers,
        "user_class": plan.user_class,
        "locustfile": plan.locustfile,
        "shaped": plan.shaped,
    }
    schedule = _fault_schedule(ctx, cell.scenario, running, plan.run_time_s)
    history = Path(f"{plan.csv_prefix}_stats_history.csv")
    run.start()
    cell.load["process_started"] = time.time()
    for pid, role in run.pids():
        sampler.watch(Watch("loadgen", pid, role))

    def tick() -> None:
        rows = locust_csv.read_history(history)
        running_rows = [row for row in rows if row.users > 0]
        if schedule is not None and not schedule.started and running_rows:
            # faults are timed from the first second users ran (as the report's time axis), not start-up
            schedule.start(float(running_rows[0].timestamp))
        live(_live_text(rows))

    try:
        outcome = run.wait(tick=tick)
    finally:
        cell.load["process_finished"] = time.time()
        if schedule is not None:
            schedule.stop()
            cell.faults = [event.to_json() for event in schedule.events]
    cell.load_started, cell.load_finished = _load_window(
        history, cell.load["process_started"], cell.load["process_finished"]
    )
    cell.load.update(
        master_exit=outcome.master_exit,
        worker_exits=outcome.worker_exits,
        timed_out=outcome.timed_out,
        seconds=round(outcome.seconds, 3),
    )
    cell.files.update(
        stats=results.STATS_CSV,
        history=results.HISTORY_CSV,
        failures=results.FAILURES_CSV,
        exceptions=results.EXCEPTIONS_CSV,
    )
    if outcome.timed_out:
        cell.status, cell.reason = results.FAILED, "Locust did not finish in time (killed)"
    elif not (cell_dir / results.STATS_CSV).is_file():
        cell.status, cell.reason = results.FAILED, f"Locust wrote no stats (exit code {outcome.master_exit})"


def _drive_wrk(
    ctx: CellContext,
    cell: Cell,
    workload: Workload,
    running: server.RunningServer,
    sampler: Sampler,
    cell_dir: Path,
    live: Callable[[str], None],
) -> None:
    settings = ctx.study.wrk
    program = resolve_program("wrk", ctx.python) or "wrk"
    url = base_url(running.host, running.port) + (workload.wrk_path or "/")
    command = wrk.argv(url, settings.threads, settings.connections, ctx.study.duration_s, program)
    cell.load = {
        "generator": "wrk",
        "argv": command,
        "threads": settings.threads,
        "connections": settings.connections,
        "duration_s": ctx.study.duration_s,
    }
    live(f"wrk -c{settings.connections} {workload.wrk_path}")
    process = wrk.start(command, cell_dir / results.WRK_TXT)
    cell.load_started = time.time()
    sampler.watch(Watch("loadgen", process.pid, "wrk"))
    code = wrk.wait(process, ctx.study.duration_s)
    cell.load_finished = time.time()
    cell.load["exit_code"] = code
    cell.files["wrk"] = results.WRK_TXT
    if wrk.parse((cell_dir / results.WRK_TXT).read_text(errors="replace")) is None:
        cell.status, cell.reason = results.FAILED, f"wrk produced no result (exit code {code})"


def _fault_schedule(
    ctx: CellContext, scenario: str, running: server.RunningServer, run_time_s: float
) -> FaultSchedule | None:
    if scenario not in FAULT_SCENARIOS:
        return None
    study = ctx.study
    return FaultSchedule(
        scenario,
        running.pid,
        running.host,
        running.port,
        at_s=run_time_s * study.fault_at,
        until_s=run_time_s * min(0.9, study.fault_at + 0.4),
        count=study.slow_clients,
    )


def run_cell(
    ctx: CellContext,
    deployment: Deployment,
    availability: Availability,
    workload: Workload,
    scenario: str,
    live: Callable[[str], None],
) -> Cell:
    """Run one cell and write its folder; never raises for a server's or generator's failure."""
    generator = "wrk" if scenario == "wrk" else "locust"
    cell = Cell(deployment.name, workload.name, scenario, generator, seed=ctx.seed, started=time.time())
    cell_dir = ctx.folder.cell_dir(cell.id)
    cell_dir.mkdir(parents=True, exist_ok=True)
    blocked = not_runnable(deployment, availability, workload, scenario, ctx)
    if blocked is not None:
        cell.status, cell.reason = blocked
        cell.finished = time.time()
        ctx.folder.write_cell(cell)
        return cell
    cell.loadavg_before = list(os.getloadavg())
    env = {"PYTHONPATH": str(ctx.repo), "PYTHONHASHSEED": str(ctx.seed)}
    if ctx.upstream_url:
        env["LAB_UPSTREAM_URL"] = ctx.upstream_url
    sampler = Sampler(ctx.study.sample_interval_s)
    running: server.RunningServer | None = None
    try:
        live("starting server")
        running = server.start(
            deployment,
            host=ctx.host,
            python=ctx.python,
            threads=ctx.study.threads,
            log_path=cell_dir / results.SERVER_LOG,
            env=env,
            cwd=ctx.repo,
            program=availability.program,
        )
        cell.server = {
            "argv": running.argv,
            "env": running.env,
            "cwd": str(ctx.repo),
            "pid": running.pid,
            "log": results.SERVER_LOG,
        }
        cell.server["ready_s"] = round(running.wait_ready(), 3)
        cell.server["port"] = running.port
        live("warming up")
        warm = running.warm_up(workload.warmup_path)
        cell.server["warmup"] = {
            "path": workload.warmup_path,
            "requests": warm.requests,
            "failures": warm.failures,
            "seconds": round(warm.seconds, 3),
        }
        sampler.watch(Watch("server", running.pid, "main", tree=True))
        sampler.start()
        drive = _drive_wrk if generator == "wrk" else _drive_locust
        drive(ctx, cell, workload, running, sampler, cell_dir, live)
        if running.process.poll() is not None:
            cell.server["exited_during_load"] = running.process.returncode
    except server.ServerFailed as exc:
        cell.status, cell.reason = results.FAILED, exc.reason
        cell.server["log_tail"] = exc.log_tail
    finally:
        sampler.stop()
        if running is not None:
            cell.server["exit_code"] = running.stop()
        cell.loadavg_after = list(os.getloadavg())
        cell.finished = time.time()
    write_csv(sampler.samples, cell_dir / results.RESOURCES_CSV)
    cell.files["resources"] = results.RESOURCES_CSV
    if cell.status == results.OK:
        found = analysis.metrics(ctx.folder, cell)
        cell.summary = {
            "requests": found.requests,
            "failures": found.failures,
            "rps": found.rps,
            "p50_ms": found.p50_ms,
            "p99_ms": found.p99_ms,
            "server_cpu_mean": found.server_cpu_mean,
            "loadgen_cpu_max": found.loadgen_cpu_max,
        }
    ctx.folder.write_cell(cell)
    return cell
