"""Build hooks (everything else about the build is in pyproject.toml).

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
import tempfile
import zipfile

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH = "lockwatch.pth"
HERE = os.path.dirname(os.path.abspath(__file__))


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
    setup(cmdclass={"build_py": BuildPyWithPth, "editable_wheel": EditableWheelWithPth})
