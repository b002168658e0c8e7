"""Session-wide set-up shared by every test folder.

The settings registry is process-wide and each server package adds its settings when its settings
module is imported. Importing all of them up front makes every test see the same registry whatever
order the tests run in.

The conformance harness (tests/conformance/harness.py) is loaded here once, as the module
``tricorn_conformance_harness`` (tests run with --import-mode=importlib: no packages), so every
folder that runs the corpora through a server imports it by that name.
"""

import importlib.util
import sys
from pathlib import Path

from tricorn.core.settings import load_package_settings

load_package_settings()


def _load_conformance_harness() -> None:
    name = "tricorn_conformance_harness"
    if name in sys.modules:
        return
    path = Path(__file__).resolve().parent / "conformance" / "harness.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


_load_conformance_harness()
