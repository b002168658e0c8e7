"""Type stub for the cffi-built extension (see build_ffi.py)."""

from typing import Any

ffi: Any
lib: Any
