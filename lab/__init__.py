"""tricorn's load-test lab: deployments x workloads driven by Locust on loopback, with reports.

Entry points (see docs/lab/README.md):

    python -m lab run --study compare [--quick]     run a study, write a result folder, render it
    python -m lab report RESULTS_DIR                re-render a result folder (Markdown + HTML)
    python -m lab compare A B                       ratios and overlays of two result folders
    python -m lab list                              deployments (with availability), workloads, studies

Invariants:
- Load is only ever sent to servers the lab started itself, on loopback (`lab.net.ensure_loopback`).
- Every load loop is bounded in count and in time (Locust `-t`, wrk `-d`, warm-up counts, deadlines).
- A report is rendered from the result folder alone, never from live state.
- The modules used by `report`, `compare` and the tests import no Locust: the heavy dependencies
  (locust, rich) are imported only by the code that runs load.
"""
