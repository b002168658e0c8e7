"""cffi build script (API, out-of-line mode): compiles csrc/ (HTTP parser, WebSocket frame codec)
into tricorn.core._cparser.

The header csrc/tricorn_http.h is both the C API and, verbatim, the cdef: one source of truth.
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
CSRC = HERE / "csrc"

ffibuilder = FFI()
ffibuilder.cdef((CSRC / "tricorn_http.h").read_text())
ffibuilder.set_source(
    "tricorn.core._cparser",
    '#include <stdint.h>\n#include "tricorn_http.h"\n',
    sources=[str((CSRC / name).relative_to(HERE)) for name in ("tricorn_http.c", "tricorn_ws.c")],
    include_dirs=[str(CSRC.relative_to(HERE))],
    extra_compile_args=["-O2", "-std=c99", "-Wall", "-Wextra", "-Wno-unused-parameter"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
