"""Only here because `cffi_modules` is a setup() keyword with no pyproject.toml equivalent."""

from setuptools import setup

setup(cffi_modules=["build_ffi.py:ffibuilder"])
