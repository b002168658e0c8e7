#!/usr/bin/env python3
"""Build and run the libFuzzer harness over tricorn-core's C HTTP/1.1 parser (stdlib only).

    python packages/core/fuzz/run.py                  # 30 s, as a quick local check
    python packages/core/fuzz/run.py --seconds 3600   # the long run
    python packages/core/fuzz/run.py --reproduce fuzz-out/artifacts/crash-...   # replay inputs
    python packages/core/fuzz/run.py --coverage       # llvm-cov report of the saved corpus

Steps: find clang with the libFuzzer, ASan and UBSan runtimes (as root, install them with apt-get
when missing; otherwise say what to install and exit 2); compile fuzz_http.c together with
csrc/tricorn_http.c into <work-dir>/build; write the seed corpus (our own seeds plus every request
of the conformance corpora in $TRICORN_CONFORMANCE_DIR, default ../shared/conformance beside the
repository) into a temporary directory; run the fuzzer for --seconds with leak detection. The exit
status is 0 only if the run finished without a crash, leak, timeout or out-of-memory; otherwise the
reproducer's path is printed. New interesting inputs accumulate in <work-dir>/corpus, so later
runs start from them.

The default work dir, <repo>/fuzz-out, is git-ignored. TRICORN_FUZZ_CFLAGS adds compiler flags
(e.g. -DFUZZ_SAME_ERROR), TRICORN_FUZZ_CC picks the compiler. Details: docs/fuzzing.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORE = HERE.parent
REPO = CORE.parent.parent
CSRC = CORE / "csrc"
HARNESS = HERE / "fuzz_http.c"
DICT = HERE / "http.dict"
SOURCES = [HARNESS, CSRC / "tricorn_http.c", CSRC / "tricorn_http.h"]

CFLAGS = [
    "-g",
    "-O1",
    "-fno-omit-frame-pointer",
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    "-fsanitize=fuzzer,address,undefined",
    "-fno-sanitize-recover=all",
]
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:strict_string_checks=1:"
    "detect_stack_use_after_return=1:check_initialization_order=1:symbolize=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:abort_on_error=1:symbolize=1",
}
CFG_LEN = 8  # configuration bytes before the HTTP bytes (see fuzz_http.c)

PROBE = b"""
#include <stdint.h>
#include <stddef.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return 0; }
"""


def log(msg: str) -> None:
    print(f"fuzz: {msg}", flush=True)


# --- toolchain ---------------------------------------------------------------------------------


def find_clang() -> str | None:
    names = [os.environ["TRICORN_FUZZ_CC"]] if os.environ.get("TRICORN_FUZZ_CC") else []
    names += ["clang"] + [f"clang-{v}" for v in range(19, 13, -1)]
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def clang_major(cc: str) -> int | None:
    out = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"clang version (\d+)", out)
    return int(m.group(1)) if m else None


def probe(cc: str) -> str:
    """'' if cc links a fuzzer with ASan and UBSan, else the compiler's complaint."""
    with tempfile.TemporaryDirectory(prefix="tricorn-fuzz-probe-") as tmp:
        src = Path(tmp) / "probe.c"
        src.write_bytes(PROBE)
        cmd = [cc, *CFLAGS, str(src), "-o", str(Path(tmp) / "probe")]
        res = subprocess.run(cmd, capture_output=True, text=True)
        return "" if res.returncode == 0 else (res.stderr.strip() or "failed") + "\n"


def apt_install(packages: list[str]) -> bool:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    log("+ " + " ".join(cmd))
    if subprocess.run(cmd, env=env).returncode == 0:
        return True
    log("+ apt-get update")  # the package lists may be missing or stale on a fresh machine
    subprocess.run(["apt-get", "update"], env=env)
    return subprocess.run(cmd, env=env).returncode == 0


def runtime_packages(cc: str | None) -> list[str]:
    major = clang_major(cc) if cc else None
    if major is None:
        return ["clang", "libclang-rt-dev"]
    return [f"libclang-rt-{major}-dev"]


def ensure_toolchain(install: bool) -> str:
    """A clang that can build the harness, installing it as root with apt-get when missing."""
    cc = find_clang()
    problem = probe(cc) if cc else "no clang on PATH\n"
    if not problem:
        return cc  # type: ignore[return-value]
    can_install = install and os.geteuid() == 0 and shutil.which("apt-get") is not None
    if can_install:
        log(f"toolchain not usable ({problem.splitlines()[0]}); installing it")
        if cc is None:
            apt_install(["clang"])
            cc = find_clang()
        if cc is not None:
            # libFuzzer, ASan and UBSan runtimes; llvm-symbolizer for readable stack traces
            extra = runtime_packages(cc)
            major = clang_major(cc)
            if major and not shutil.which("llvm-symbolizer"):
                extra.append(f"llvm-{major}")
            apt_install(extra)
            problem = probe(cc)
            if not problem:
                return cc
    sys.stderr.write(
        "fuzz: cannot build the fuzzer: "
        + problem
        + "fuzz: it needs clang with the libFuzzer, AddressSanitizer and\n"
        "fuzz: UndefinedBehaviorSanitizer runtimes. On Debian 12 (bookworm), as root:\n"
        "fuzz:     apt-get update && apt-get install -y --no-install-recommends "
        "clang libclang-rt-14-dev llvm-14\n"
        "fuzz: (other releases: clang-N with libclang-rt-N-dev; before LLVM 14, libfuzzer-N-dev)\n"
        "fuzz: run.py installs them itself when run as root with apt-get available.\n"
    )
    sys.exit(2)


def build(cc: str, build_dir: Path) -> Path:
    """Compile the harness unless an up-to-date binary exists (same sources, flags, compiler)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    exe = build_dir / "fuzz_http"
    extra = os.environ.get("TRICORN_FUZZ_CFLAGS", "").split()  # e.g. -DFUZZ_SAME_ERROR
    cmd = [cc, *CFLAGS, *extra, f"-I{CSRC}", str(HARNESS), str(CSRC / "tricorn_http.c")]
    stamp = build_dir / "fuzz_http.stamp"
    key = json.dumps(
        {"cmd": cmd, "mtimes": [p.stat().st_mtime_ns for p in SOURCES], "cc": clang_major(cc)}
    )
    if exe.exists() and stamp.exists() and stamp.read_text() == key:
        log(f"harness up to date: {exe}")
        return exe
    tmp = build_dir / f"fuzz_http.tmp{os.getpid()}"
    log("+ " + " ".join([*cmd, "-o", str(exe)]))
    t0 = time.monotonic()
    res = subprocess.run([*cmd, "-o", str(tmp)])
    if res.returncode != 0:
        tmp.unlink(missing_ok=True)
        sys.stderr.write("fuzz: the harness did not compile\n")
        sys.exit(2)
    os.replace(tmp, exe)  # atomic, in case two runs share the work dir
    stamp.write_text(key)
    log(f"built in {time.monotonic() - t0:.1f} s")
    return exe


# --- seed corpus -------------------------------------------------------------------------------


def cfg(
    options: int = 0,
    small: bool = False,
    split: int = 0,
    b3: int = 0,
    limits: tuple[int, int, int, int] = (0, 0, 0, 0),
    body: int = 0,
) -> bytes:
    """The CFG_LEN configuration bytes that fuzz_http.c reads before the HTTP bytes."""
    b0 = (options & 7) | (8 if small else 0) | (body & 0x30)
    return bytes([b0, split & 0xFF, (split >> 8) & 0xFF, b3 & 0xFF, *limits])


OWN_SEEDS: list[bytes] = [
    b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"GET /index.html?q=1&r=%20 HTTP/1.0\r\nUser-Agent: t\r\nConnection: keep-alive\r\n\r\n",
    b"\r\n\r\nGET /after-empty-lines HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: 7\r\n\r\na=1&b=2",
    b"POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
    b'5\r\nhello\r\n6;ext=1;q="a\\"b"\r\n world\r\nA \r\n0123456789\r\n0\r\nX-Sum: 42\r\n\r\n'
    b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n",
    b"PUT /z HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
    b"GET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    b"GET http://user.example:8080/p?q#f HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
    b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n  two\r\n\tthree\r\nX_Under: 1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Obs: caf\xc3\xa9 \xff\t end\t \r\nEmpty:\r\n\r\n",
    # chunked bodies and trailer sections on their own (the harness also decodes from byte 0)
    b"5\r\nhello\r\n0\r\n\r\n",
    b'1;a=b;c="q\\"x" ; d\r\nx\r\n0\r\nX-T: v\r\nX-U:  w \r\n\r\n',
    b"ffffffffffffffff\r\n",
    b"10000000000000000\r\n",
    b"X-Foo: bar\r\nX-Baz: q\r\n\r\n",
]


# Inputs that once failed (configuration bytes included), replayed first by every run.
REGRESSIONS: list[bytes] = [
    # a bare CR that ended one piece was not looked at again: "...\rT" failed in one piece but
    # waited for more bytes when split after the CR
    b"\x00\x3ftransfer_encodinCookie: \rT",
    # max_chunk_ext 0: the ";" that ends a chunk-size was counted but not checked
    b"\x1b\x1b\x1b\x1b\x1b\x00\x00\x001;a=ssssssss" + b"\x8c" * 8,
]


def own_seeds() -> Iterator[bytes]:
    yield from REGRESSIONS
    for raw in OWN_SEEDS:
        yield cfg(split=len(raw) // 2) + raw
        # all options on; small limits near the sizes of the seed
        yield cfg(7, True, len(raw) // 3, 0x87, (64, 0x34, 48, 40), body=16) + raw
    yield cfg(1, split=3) + OWN_SEEDS[12]  # obs-fold with TC_OPT_UNFOLD
    yield cfg(body=32) + OWN_SEEDS[14]  # huge max_body_size


def conformance_dir() -> Path:
    env = os.environ.get("TRICORN_CONFORMANCE_DIR")
    return Path(env) if env else REPO.parent / "shared" / "conformance"


def conformance_requests(root: Path) -> Iterator[bytes]:
    """The request bytes of every case: gunicorn *.raw, llhttp and HTTP Garden raw_b64."""
    for path in sorted(root.glob("gunicorn/*/*.raw")):
        yield path.read_bytes()
    for rel in ("llhttp/requests.jsonl", "http-garden/server_bugs.jsonl"):
        path = root / rel
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                case = json.loads(line)
                if case.get("raw_b64"):
                    yield base64.b64decode(case["raw_b64"])


def write_seeds(dest: Path) -> tuple[int, int]:
    """Writes the seed corpus into dest; returns (own seeds, conformance seeds)."""
    own = 0
    for own, data in enumerate(own_seeds(), 1):
        (dest / f"own-{own:03d}").write_bytes(data)
    root = conformance_dir()
    conf = 0
    if root.is_dir():
        for raw in conformance_requests(root):
            # defaults, split in the middle; and small limits, which the limit paths need
            for variant in (
                cfg(split=len(raw) // 2, b3=conf) + raw,
                cfg(0, True, len(raw) // 3, 0x40 | conf, (120, 0x38, 100, 200)) + raw,
            ):
                conf += 1
                (dest / f"conf-{conf:04d}").write_bytes(variant)
    else:
        log(f"WARNING: no conformance corpus at {root} (TRICORN_CONFORMANCE_DIR): own seeds only")
    log(f"seeds: {own} own, {conf} from the conformance corpus ({root})")
    return own, conf


# --- running -----------------------------------------------------------------------------------


def coverage(cc: str, work: Path, corpus_dirs: list[str]) -> int:
    """Replays the corpus through a coverage build and prints llvm-cov's report for the parser."""
    major = clang_major(cc)
    tools = {}
    for tool in ("llvm-profdata", "llvm-cov"):
        found = shutil.which(f"{tool}-{major}") or shutil.which(tool)
        if not found:
            sys.stderr.write(f"fuzz: {tool} not found (Debian: apt-get install llvm-{major})\n")
            return 2
        tools[tool] = found
    build_dir = work / "build-cov"
    build_dir.mkdir(parents=True, exist_ok=True)
    exe = build_dir / "fuzz_http_cov"
    cmd = [
        cc,
        "-g",
        "-O0",
        "-std=c99",
        "-fsanitize=fuzzer",
        "-fprofile-instr-generate",
        "-fcoverage-mapping",
        f"-I{CSRC}",
        str(HARNESS),
        str(CSRC / "tricorn_http.c"),
        "-o",
        str(exe),
    ]
    log("+ " + " ".join(cmd))
    if subprocess.run(cmd).returncode != 0:
        return 2
    raw = build_dir / "cov.profraw"
    data = build_dir / "cov.profdata"
    env = dict(os.environ, LLVM_PROFILE_FILE=str(raw))
    res = subprocess.run(
        [str(exe), "-runs=0", *corpus_dirs], env=env, capture_output=True, text=True
    )
    inited = re.findall(r"^#\d+\s+INITED.*$", res.stderr, re.M)
    if inited:
        log(f"corpus replay: {inited[-1]}")
    subprocess.run(
        [tools["llvm-profdata"], "merge", "-sparse", str(raw), "-o", str(data)], check=True
    )
    rep = [
        tools["llvm-cov"],
        "report",
        str(exe),
        f"-instr-profile={data}",
        str(CSRC / "tricorn_http.c"),
    ]
    log("+ " + " ".join(rep))
    return subprocess.run(rep).returncode


def run_fuzzer(cmd: list[str], deadline: float, log_path: Path) -> tuple[int, str]:
    """Runs libFuzzer, echoing and logging its output; kills it if it overruns the deadline."""
    env = dict(os.environ, **SANITIZER_ENV)
    symbolizer = shutil.which("llvm-symbolizer")
    if symbolizer:
        env.setdefault("ASAN_SYMBOLIZER_PATH", symbolizer)
    lines: list[str] = []
    with log_path.open("w") as logf:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        assert proc.stdout is not None
        timer_fired = False

        def on_alarm(signum: int, frame: object) -> None:
            nonlocal timer_fired
            timer_fired = True
            os.killpg(proc.pid, signal.SIGKILL)  # our own child's process group only

        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(max(1, int(deadline)))
        try:
            for line in proc.stdout:
                sys.stdout.write(line)
                logf.write(line)
                lines.append(line)
            rc = proc.wait()
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
    out = "".join(lines)
    if timer_fired:
        out += f"\nfuzz: the fuzzer overran its time ({deadline:.0f} s) and was killed\n"
        rc = rc or 1
    return rc, out


def report(rc: int, out: str, exe: Path, log_path: Path) -> int:
    artifacts = re.findall(r"Test unit written to (\S+)", out)
    done = re.findall(r"^Done (\d+) runs in (\d+) second", out, re.M)
    stats = dict(re.findall(r"^stat::(\w+):\s*(\d+)", out, re.M))
    last = [ln for ln in out.splitlines() if re.match(r"#\d+\s+(DONE|pulse|NEW|REDUCE|INITED)", ln)]
    if rc == 0 and done and not artifacts:
        runs, secs = done[-1]
        log(f"OK: {runs} runs in {secs} s, no crash, leak or timeout")
        if last:
            log(f"final: {last[-1].strip()}")
        if stats:
            log("stats: " + ", ".join(f"{k}={v}" for k, v in stats.items()))
        log(f"log: {log_path}")
        return 0
    log(f"FAILED (libFuzzer exit status {rc}); full log: {log_path}")
    for path in artifacts:
        log(f"reproducer: {path}")
        log(f"  replay:   python {HERE / 'run.py'} --reproduce {path}")
        log(f"  or:       {exe} {path}")
        log(f"  minimize: {exe} -minimize_crash=1 -runs=100000 {path}")
    if not artifacts:
        log("no reproducer was written (see the log)")
    return 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=int, default=30, help="fuzzing time (default 30)")
    ap.add_argument(
        "--work-dir",
        type=Path,
        default=REPO / "fuzz-out",
        help="build dir, growing corpus and crash artifacts (default <repo>/fuzz-out, git-ignored)",
    )
    ap.add_argument("--max-len", type=int, default=4096, help="largest input in bytes (4096)")
    ap.add_argument("--rss-limit-mb", type=int, default=2048, help="memory limit (2048 MB)")
    ap.add_argument("--timeout", type=int, default=10, help="seconds for one input (10)")
    ap.add_argument("--seed", type=int, default=0, help="libFuzzer -seed (0: random)")
    ap.add_argument("--no-install", action="store_true", help="never run apt-get")
    ap.add_argument("--fresh", action="store_true", help="start without the saved corpus")
    ap.add_argument(
        "--reproduce",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="only run the harness on these inputs (no fuzzing)",
    )
    ap.add_argument(
        "--coverage",
        action="store_true",
        help="no fuzzing: replay the saved corpus and seeds through a coverage build\n"
        "and print llvm-cov's report for csrc/tricorn_http.c",
    )
    ap.add_argument("libfuzzer_args", nargs="*", help="extra libFuzzer flags, after --")
    args = ap.parse_args(argv)

    cc = ensure_toolchain(install=not args.no_install)
    work = args.work_dir.resolve()
    exe = build(cc, work / "build")
    artifacts = work / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_path = work / f"fuzz-{stamp}-{os.getpid()}.log"

    if args.reproduce:
        cmd = [
            str(exe),
            f"-rss_limit_mb={args.rss_limit_mb}",
            f"-timeout={args.timeout}",
            "-detect_leaks=1",
            *args.libfuzzer_args,
            *map(str, args.reproduce),
        ]
        log("+ " + " ".join(cmd))
        rc, out = run_fuzzer(cmd, 600, log_path)
        log("all inputs ran cleanly" if rc == 0 else f"FAILED (exit status {rc}); log: {log_path}")
        return 0 if rc == 0 else 1

    corpus = work / "corpus"
    if args.coverage:
        with tempfile.TemporaryDirectory(prefix="tricorn-fuzz-seeds-") as seeds:
            write_seeds(Path(seeds))
            dirs = [str(corpus), seeds] if corpus.is_dir() else [seeds]
            return coverage(cc, work, dirs)
    if args.fresh and corpus.exists():
        shutil.rmtree(corpus)
    corpus.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tricorn-fuzz-seeds-") as seeds:
        write_seeds(Path(seeds))
        cmd = [
            str(exe),
            str(corpus),  # first: new inputs are saved here
            seeds,
            f"-dict={DICT}",
            f"-max_total_time={args.seconds}",
            f"-max_len={args.max_len}",
            f"-rss_limit_mb={args.rss_limit_mb}",
            f"-timeout={args.timeout}",
            "-detect_leaks=1",
            "-print_final_stats=1",
            f"-artifact_prefix={artifacts}/",
            f"-seed={args.seed}",
            *args.libfuzzer_args,
        ]
        log("+ " + " ".join(cmd))
        # libFuzzer stops itself after --seconds; the guard covers loading the corpus and hangs.
        rc, out = run_fuzzer(cmd, args.seconds + 120 + args.timeout, log_path)
    return report(rc, out, exe, log_path)


if __name__ == "__main__":
    sys.exit(main())
