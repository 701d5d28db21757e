"""Build hooks (everything else about the build is in pyproject.toml).

The C core (lockwatch/_ccore.c) is an optional extension, as coverage.py's
CTracer is: built when a compiler and Python's headers are at hand, and
otherwise lockwatch installs as pure Python and the build says so once.
Free-threaded Pythons get no C core (it relies on the GIL).

lockwatch.pth, the LOCKWATCH=1 start-up hook, must land in site-packages itself,
not inside the package: site.py runs the ``import`` lines of ``*.pth`` files it
finds there at every interpreter start-up. A wheel's root is installed into
site-packages, so both ways of installing put the file at the wheel's root:

- ``pip install .`` builds a regular wheel: build_py copies the file into the build tree;
- ``pip install -e .`` builds an editable wheel (PEP 660), which setuptools makes
  without the build tree's extra files: the file is added to that wheel, with its
  RECORD line, after setuptools wrote it.

pip records the file like any other, so ``pip uninstall lockwatch`` removes it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import sys
import sysconfig
import tempfile
import zipfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

C_CORE = "lockwatch._ccore"
PTH = "lockwatch.pth"
HERE = os.path.dirname(os.path.abspath(__file__))

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


class BuildPyWithPth(build_py):
    """``build_py`` that also puts lockwatch.pth at the root of the build tree (the wheel's root)."""

    def run(self) -> None:
        super().run()
        if not getattr(self, "editable_mode", False):  # an editable build copies nothing
            self.copy_file(os.path.join(HERE, PTH), os.path.join(self.build_lib, PTH), preserve_mode=False)


class EditableWheelWithPth(editable_wheel):
    """``editable_wheel`` whose wheel also carries lockwatch.pth at its root."""

    def run(self) -> None:
        super().run()
        with open(os.path.join(HERE, PTH), "rb") as handle:
            data = handle.read()
        for name in os.listdir(self.dist_dir):
            if name.startswith("lockwatch-") and ".editable-" in name and name.endswith(".whl"):
                add_to_wheel(os.path.join(self.dist_dir, name), PTH, data)


def add_to_wheel(wheel: str, arcname: str, data: bytes) -> None:
    """Add a file at the root of ``wheel``, with its line in the wheel's RECORD (no-op if present)."""
    with zipfile.ZipFile(wheel) as source:
        entries = [(info, source.read(info)) for info in source.infolist()]
    names = [info.filename for info, _content in entries]
    if arcname in names:
        return
    records = [name for name in names if name.endswith(".dist-info/RECORD") and name.count("/") == 1]
    if len(records) != 1:
        raise RuntimeError(f"{wheel}: expected one .dist-info/RECORD, found {records}")
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    fd, temporary = tempfile.mkstemp(suffix=".whl", dir=os.path.dirname(wheel))
    os.close(fd)
    try:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as target:
            for info, content in entries:
                if info.filename == records[0]:
                    # The new file goes just before RECORD, and its line before RECORD's own (last) line.
                    added = zipfile.ZipInfo(arcname, date_time=info.date_time)
                    added.external_attr = 0o644 << 16
                    target.writestr(added, data, compress_type=zipfile.ZIP_DEFLATED)
                    lines = content.decode("utf-8").splitlines(keepends=True)
                    own = [line for line in lines if line.startswith(records[0] + ",")]
                    others = [line for line in lines if not line.startswith(records[0] + ",")]
                    content = "".join([*others, f"{arcname},sha256={digest},{len(data)}\n", *own]).encode("utf-8")
                target.writestr(_info_like(info), content)
        shutil.move(temporary, wheel)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _info_like(info: zipfile.ZipInfo) -> zipfile.ZipInfo:
    copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
    copy.external_attr = info.external_attr
    copy.compress_type = info.compress_type
    return copy


if __name__ == "__main__":  # as setuptools runs it (tests import add_to_wheel)
    setup(
        ext_modules=c_core(),
        cmdclass={"build_ext": OptionalBuildExt, "build_py": BuildPyWithPth, "editable_wheel": EditableWheelWithPth},
    )
