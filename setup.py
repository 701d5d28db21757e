"""Build hooks (everything else about the build is in pyproject.toml).

The C core (lockwatch/_ccore.c) is an optional extension, as coverage.py's
CTracer is: built when a compiler and Python's headers are at hand, and
otherwise lockwatch installs as pure Python and the build says so once.
Free-threaded Pythons get no C core (it relies on the GIL).
"""

from __future__ import annotations

import os
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

C_CORE = "lockwatch._ccore"


class OptionalBuildExt(build_ext):
    """``build_ext`` whose failure leaves a working pure-Python install, and says so in one line."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001  (no compiler at all: the pure-Python core is installed)
            self._said_so(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001  (a failed compile: the pure-Python core is installed)
            self._said_so(exc)

    def _said_so(self, exc: BaseException) -> None:
        # A compiler's command line says nothing to a user; its own messages came before this line.
        reason = "the compiler failed" if "exit status" in str(exc) else (str(exc).strip() or type(exc).__name__)
        print(
            f"WARNING: lockwatch: the C core could not be built ({reason}); "
            "installing the pure-Python core ('lockwatch --version' says which core runs)",
            file=sys.stderr,
        )


def c_core() -> list[Extension]:
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        print("lockwatch: free-threaded Python: the pure-Python core is used (no C core built)", file=sys.stderr)
        return []
    # A function missing from this Python's headers must fail the build (then the Python
    # core is used), never compile into a call through a wrongly typed implicit declaration.
    strict = [] if os.name == "nt" else ["-Werror=implicit-function-declaration"]
    return [Extension(C_CORE, sources=["lockwatch/_ccore.c"], optional=True, extra_compile_args=strict)]


setup(ext_modules=c_core(), cmdclass={"build_ext": OptionalBuildExt})
