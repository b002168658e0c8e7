"""The Locust side of the lab: user classes (`users`), and the locustfiles Locust is pointed at.

Imported only by Locust processes (master and workers), which the runner starts with PYTHONPATH set to
the repository root and the LAB_* environment described in `lab.loadgen.settings`.
"""
