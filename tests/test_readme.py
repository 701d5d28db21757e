"""The README's sample reports are real: each is the output of an example run under lockwatch.

Each sample sits in README.md between ``<!-- sample: NAME -->`` and ``<!-- end sample -->``.
The test runs the example and compares, after masking what changes from run to run
(thread ids, pids, times, durations, lock ids, stdlib line numbers), so a change in what
reports say fails here until the README says it too. After an intended change, rewrite
the samples (and the pictures docs/deadlock.svg and docs/lock-order.svg, when
Graphviz is installed) from a fresh run with

    LOCKWATCH_REGEN_GOLDEN=1 python -m pytest tests/test_readme.py
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

#: What each sample runs, from a directory holding a copy of examples/ (dumps go to its ./lockwatch-dumps),
#: and whether the program's own output is shown: lockwatch presents a lock-order finding from its own
#: thread a moment later, so where it falls among the program's lines is up to the scheduler.
SAMPLES = {
    "deadlock": (["--order", "off", "--on-deadlock", "exit", "examples/bank_transfer_deadlock.py"], True),
    "lock-order": (["examples/resources_naive.py"], False),
}

_BLOCK = re.compile(r"(<!-- sample: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end sample -->)", re.DOTALL)

# What differs between two runs of the same example, and what it is masked as.
_MASKS = [
    (re.compile(r"\(id \d+"), "(id ID"),
    (re.compile(r"\bprocess \d+"), "process PID"),
    (re.compile(r"\bPython \d+\.\d+\.\d+"), "Python X.Y.Z"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d"), "TIME"),
    (re.compile(r"-\d{8}-\d{6}-\d+-\d+\."), "-STAMP."),
    (re.compile(r"\b\d+ ms\b|\b\d+\.\d s\b"), "DURATION"),
    (re.compile(r"\bL\d+\b"), "L#"),
    (re.compile(r'(\.\.\./[\w/]+\.py", line )\d+'), r"\g<1>N"),
    (re.compile(r"(\.\.\./[\w/]+\.py:)\d+"), r"\g<1>N"),
    # Which teller blocks first (and so leads the cycle) is up to the scheduler.
    (re.compile(r"teller-\d"), "teller-N"),
    # resources_naive.py ends about 10 ms after its inversion: whether the objects holding its
    # locks still live when lockwatch's thread names them is a race, so either name is real.
    (re.compile(r"ResourceManager\.locks\['\w+'\]|Lock from resources_naive\.py:\d+ \(L#\)"), "LOCK"),
]


def mask(text: str) -> str:
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    # Where the other threads are when a report is made depends on when lockwatch's own
    # thread gets to it (a lock-order report comes a moment after the acquire): the
    # section must be there, its lines may differ.
    return re.sub(r"(\nOther threads:\n)(  .*\n)+", r"\1  ...\n", text)


def run_sample(name: str, tmp_path: Path) -> str:
    """The sample as the README shows it: the command, everything it printed, its exit status."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKWATCH")}
    env["PYTHONUNBUFFERED"] = "1"  # stdout and stderr interleave as in a terminal
    args, with_stdout = SAMPLES[name]
    done = subprocess.run(
        [sys.executable, "-m", "lockwatch", "run", *args],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE if with_stdout else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if with_stdout else subprocess.PIPE, text=True, timeout=60,
    )
    output = (done.stdout if with_stdout else done.stderr).replace(f"{tmp_path}{os.sep}", "")
    for library in {sysconfig.get_paths()["stdlib"], os.path.dirname(os.__file__)}:
        output = output.replace(library, "...")
    command = " ".join(args) + ("" if with_stdout else " > /dev/null")
    return f"$ lockwatch run {command}\n{output}$ echo $?\n{done.returncode}\n"


def draw_picture(name: str, tmp_path: Path) -> None:
    """docs/NAME.svg from the sample's dump, with the run's temporary directory left out of paths."""
    import json

    from lockwatch._model import Report
    from lockwatch._render import render

    [dump] = sorted((tmp_path / "lockwatch-dumps").glob(f"{name}-*.json"))
    text = dump.read_text(encoding="utf-8").replace(f"{tmp_path}{os.sep}", "")
    render(Report.from_dict(json.loads(text)), ROOT / "docs" / f"{name}.svg", "svg")


def readme_samples() -> dict[str, str]:
    return {m.group("name"): m.group("body") for m in _BLOCK.finditer(README.read_text(encoding="utf-8"))}


def fenced(text: str) -> str:
    return f"```text\n{text}```\n"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_readme_sample_is_real_output(name: str, tmp_path: Path) -> None:
    actual = fenced(run_sample(name, tmp_path))
    if os.environ.get("LOCKWATCH_REGEN_GOLDEN"):
        # The README's picture of the same finding is drawn from this run's dump (needs Graphviz).
        if shutil.which("dot"):
            draw_picture(name, tmp_path)
        text = README.read_text(encoding="utf-8")
        text = _BLOCK.sub(lambda m: m.group(1) + actual + m.group(4) if m.group("name") == name else m.group(0), text)
        README.write_text(text, encoding="utf-8")
    samples = readme_samples()
    assert name in samples, f"README.md has no <!-- sample: {name} --> block"
    assert mask(samples[name]) == mask(actual), (
        "README.md's sample differs from a real run; if the change is intended, run "
        "LOCKWATCH_REGEN_GOLDEN=1 python -m pytest tests/test_readme.py"
    )


def test_every_report_line_kind_is_explained() -> None:
    """The README says what each kind of line in a report means."""
    text = README.read_text(encoding="utf-8")
    section = " ".join(text.split("### Reading a report", 1)[1].split("\n## ", 1)[0].split())
    for words in ("DEADLOCK", "POTENTIAL DEADLOCK", "HANG", "SNAPSHOT", "(process", "Cycle:", "Lock-order cycle",
                  "first taken by", "holds lock", "taken at", "created at", "waits for lock", "waits in",
                  "Stack (most recent call last)", ">>", "Other threads", "Blocked behind it", "(L", "victim",
                  "no longer running", "dump written to"):
        assert words in section, f"the README does not explain report lines with {words!r}"


def test_ranks_without_patch_are_documented_as_unchecked() -> None:
    """Ranks are checked while lockwatch is on; the README says that a program without patch() gets no check."""
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert "Names and ranks are checked only while lockwatch is on" in text
    assert "in a program that never calls `patch()`" in text
