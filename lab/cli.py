"""The lab's command line: run, report, compare, list, validate.

    python -m lab run --study compare [--quick] [--workers N] [--deployments PATTERNS] [--workloads PATTERNS]
    python -m lab report RESULTS_DIR [--baseline NAME]
    python -m lab compare A B [--tolerance 0.10] [--fail-on-regression]
    python -m lab list
    python -m lab validate RESULTS_DIR

Exit codes: 0 fine; 1 `run --check` found failed cells or failed requests, or `compare
--fail-on-regression` found a regression, or `validate` found problems; 2 usage or set-up errors
(e.g. Locust is not installed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from lab import studies

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = REPO / "lab" / "results"


def _patterns(value: str | None) -> list[str] | None:
    return [p.strip() for p in value.split(",") if p.strip()] if value else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lab", description="tricorn's load-test lab (loopback only)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a study into a new result folder, then render its report")
    run.add_argument("--study", default="compare", choices=sorted(studies.STUDIES))
    run.add_argument("--quick", action="store_true", help="seconds per cell (smoke test); implies --check")
    run.add_argument(
        "--workers",
        type=int,
        default=max(1, min(os.cpu_count() or 1, 4)),
        help="N of the multi-worker deployments (default: CPU count, at most 4)",
    )
    run.add_argument("--deployments", help="comma-separated fnmatch patterns narrowing the deployments")
    run.add_argument("--workloads", help="comma-separated fnmatch patterns narrowing the workloads")
    run.add_argument("--duration", type=float, help="seconds of load per cell (overrides the study)")
    run.add_argument("--users", type=int, help="Locust users per cell (overrides the study)")
    run.add_argument("--locust-workers", type=int, help="Locust worker processes (0: one local process)")
    run.add_argument(
        "--step-s", type=float, help="seconds per step of the step profile (overrides the study)"
    )
    run.add_argument("--step-max-users", type=int, help="users of the last step (overrides the study)")
    run.add_argument("--seed", type=int, default=1)
    run.add_argument("--out", type=Path, help="result folder (default lab/results/STUDY-TIMESTAMP)")
    run.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if a cell failed or a cell without injected faults had failed requests",
    )
    run.add_argument("--no-report", action="store_true", help="do not render the report after the run")
    run.add_argument("--plain", action="store_true", help="plain progress lines instead of a live display")

    report = commands.add_parser("report", help="render Markdown + HTML from a result folder")
    report.add_argument("results", type=Path)
    report.add_argument("--baseline", help="deployment the ratios are computed against")
    report.add_argument("--out", type=Path, help="output folder (default RESULTS/report)")

    compare = commands.add_parser("compare", help="ratios and overlay plots of two result folders (B vs A)")
    compare.add_argument("a", type=Path)
    compare.add_argument("b", type=Path)
    compare.add_argument(
        "--tolerance",
        type=float,
        default=0.10,
        help="relative change that counts as a regression (default 0.10)",
    )
    compare.add_argument("--out", type=Path, help="output folder (default B/compare-vs-A)")
    compare.add_argument("--fail-on-regression", action="store_true")

    commands.add_parser("list", help="deployments (with availability here), workloads and studies")
    validate = commands.add_parser("validate", help="check a result folder against the schema")
    validate.add_argument("results", type=Path)
    return parser


def _run(args: argparse.Namespace) -> int:
    import dataclasses

    from lab import analysis, availability, progress, runner

    if not availability.module_present("locust"):
        print(
            "Locust is not installed in this environment: pip install -r lab/requirements.txt",
            file=sys.stderr,
        )
        return 2
    study = studies.get(args.study)
    if args.quick:
        study = study.quick()
    overrides = {
        key: value
        for key, value in (
            ("duration_s", args.duration),
            ("users", args.users),
            ("locust_workers", args.locust_workers),
        )
        if value is not None
    }
    if "users" in overrides:
        overrides["spawn_rate"] = float(overrides["users"])
    step_changes = {
        key: value
        for key, value in (("step_s", args.step_s), ("max_users", args.step_max_users))
        if value is not None
    }
    if step_changes:
        overrides["step"] = dataclasses.replace(study.step, **step_changes)
    if overrides:
        study = dataclasses.replace(study, **overrides)
    plan = runner.plan(study, args.workers, _patterns(args.deployments), _patterns(args.workloads))
    if not plan.cells():
        print("no cells selected", file=sys.stderr)
        return 2
    out = (
        args.out
        or DEFAULT_RESULTS
        / f"{study.name}{'-quick' if study.quick_mode else ''}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    try:
        folder = runner.run(
            plan,
            out,
            progress.make(args.plain),
            seed=args.seed,
            repo=REPO,
            argv=["python", "-m", "lab", *sys.argv[1:]],
        )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: the cells run so far are in {out} (render them with `python -m lab report`)",
            file=sys.stderr,
        )
        return 130
    print(f"results: {folder.path}")
    if not args.no_report:
        from lab import report

        rendered = report.render(folder.path)
        print(f"report: {rendered.markdown}  {rendered.html}")
    if args.check or args.quick:
        problems = analysis.check(folder)
        for problem in problems:
            print(f"CHECK: {problem}", file=sys.stderr)
        if problems:
            return 1
        print("check: every cell that ran served its workload without failures")
    return 0


def _list() -> int:
    from lab import availability, deployments, workloads

    print("deployments (N = 2 here; `run --workers N` changes it):")
    for d in deployments.catalogue(2):
        state = availability.check(d)
        where = "available" if state.available else f"unavailable: {state.reason}"
        print(f"  {d.name:24} {d.family:9} {d.model:8} {d.interface:4}  {where}")
    print("workloads:")
    for w in workloads.WORKLOADS:
        print(f"  {w.name:10} {w.description}")
    print("studies:")
    for s in studies.STUDIES.values():
        print(f"  {s.name:10} {s.description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "report":
        from lab import report

        rendered = report.render(args.results, baseline=args.baseline, out=args.out)
        print(f"{rendered.markdown}\n{rendered.html}")
        return 0
    if args.command == "compare":
        from lab import compare

        done = compare.render(args.a, args.b, tolerance=args.tolerance, out=args.out)
        print(f"{done.markdown}\n{done.html}")
        for line in done.regressions:
            print(f"REGRESSION: {line}", file=sys.stderr)
        return 1 if args.fail_on_regression and done.regressions else 0
    if args.command == "validate":
        from lab import results

        problems = results.validate(args.results)
        for problem in problems:
            print(problem)
        print("valid" if not problems else f"{len(problems)} problem(s)")
        return 1 if problems else 0
    return _list()
