"""Run the Autobahn TestSuite fuzzing client against tricorn-asgi serving echo_app.

    python tests/autobahn/run_autobahn.py                    # sections 1-7 and 10 (the shared spec)
    python tests/autobahn/run_autobahn.py --cases '12.*' '13.*'    # permessage-deflate
    python tests/autobahn/run_autobahn.py --cases '9.*'      # performance (slow)
    python tests/autobahn/run_autobahn.py --full             # everything but 9.*

wstest (Python 2.7, autobahntestsuite 25.10.1) is installed once into ~/.cache/tricorn/wstest from
pyenv's Python 2.7.18 (/work/shared/conformance/README.md section 4); --wstest overrides the path.
The spec is /work/shared/conformance/websocket/fuzzingclient.json, copied to a temporary directory
with its URL and case lists rewritten (never into the repository). Prints a summary per behaviour
and exits 1 if any case is not OK / NON-STRICT / INFORMATIONAL (UNIMPLEMENTED allowed for 12/13).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPEC = Path(os.environ.get("TRICORN_AUTOBAHN_SPEC",
                           "/work/shared/conformance/websocket/fuzzingclient.json"))
CACHE = Path.home() / ".cache" / "tricorn" / "wstest"
GOOD = {"OK", "NON-STRICT", "INFORMATIONAL"}


def wstest_path(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    found = shutil.which("wstest")
    if found:
        return Path(found)
    candidate = CACHE / "bin" / "wstest"
    return candidate if candidate.exists() else None


def install_wstest() -> Path:
    """Install autobahntestsuite under pyenv's Python 2.7.18 into the cache (about a minute)."""
    root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True).stdout.strip()
    py2 = Path(root) / "versions" / "2.7.18" / "bin" / "python"
    if not py2.exists():
        raise SystemExit(f"no Python 2.7.18 at {py2}: install it with pyenv, or pass --wstest")
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    run = lambda *a: subprocess.run(list(a), check=True)  # noqa: E731
    run(str(py2), "-m", "pip", "install", "-q", "virtualenv<20.22", "--constraint", "/dev/null")
    run(str(py2), "-m", "virtualenv", "-q", str(CACHE))
    run(str(CACHE / "bin" / "pip"), "install", "-q", "--constraint", "/dev/null",
        "autobahntestsuite==25.10.1")
    return CACHE / "bin" / "wstest"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not start")


def run(cases: list[str], exclude: list[str], wstest: Path, outdir: Path,
        server_args: list[str]) -> dict[str, dict[str, str]]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tricorn.asgi", "--chdir", str(HERE), "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", *server_args, "echo_app:app"],
    )
    try:
        wait_port(port)
        spec = json.loads(SPEC.read_text())
        spec["outdir"] = str(outdir)
        spec["servers"] = [{"agent": "tricorn", "url": f"ws://127.0.0.1:{port}"}]
        if cases:
            spec["cases"] = cases
        spec["exclude-cases"] = exclude
        spec_file = outdir / "fuzzingclient.json"
        spec_file.write_text(json.dumps(spec, indent=1))
        subprocess.run([str(wstest), "-m", "fuzzingclient", "-s", str(spec_file)], check=True,
                       cwd=outdir, stdout=subprocess.DEVNULL)
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
    index = json.loads((outdir / "index.json").read_text())
    return index["tricorn"]


def summarize(results: dict[str, dict[str, str]]) -> tuple[collections.Counter[str], list[str]]:
    counts: collections.Counter[str] = collections.Counter()
    bad = []
    for case, result in results.items():
        behavior = result["behavior"]
        counts[behavior] += 1
        ok = behavior in GOOD or (behavior == "UNIMPLEMENTED" and case.split(".")[0] in ("12", "13"))
        if not ok or result.get("behaviorClose") not in GOOD:
            bad.append(f"{case}: {behavior} (close: {result.get('behaviorClose')})")
    return counts, bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cases", nargs="*", default=None, help="case patterns (default: the spec's)")
    ap.add_argument("--exclude", nargs="*", default=None, help="excluded patterns")
    ap.add_argument("--full", action="store_true", help="every case but 9.*")
    ap.add_argument("--wstest", help="path of wstest (default: PATH, then the cache)")
    ap.add_argument("--install", action="store_true", help="install wstest if it is missing")
    ap.add_argument("--outdir", help="keep the reports here (default: a temporary directory)")
    ap.add_argument("server_args", nargs="*", help="extra tricorn-asgi options (after --)")
    args = ap.parse_args(argv)
    wstest = wstest_path(args.wstest)
    if wstest is None:
        if not args.install:
            print("wstest not found: pass --install (or --wstest PATH)", file=sys.stderr)
            return 2
        wstest = install_wstest()
    cases = args.cases or []
    exclude = args.exclude if args.exclude is not None else (["9.*"] if args.full else None)
    if exclude is None:
        exclude = json.loads(SPEC.read_text()).get("exclude-cases", [])
    with tempfile.TemporaryDirectory(prefix="tricorn-autobahn-") as tmp:
        outdir = Path(args.outdir) if args.outdir else Path(tmp)
        outdir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        results = run(cases, exclude, wstest, outdir, args.server_args)
        counts, bad = summarize(results)
    print(f"{len(results)} cases in {time.monotonic() - started:.0f} s: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for line in bad:
        print("  " + line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
