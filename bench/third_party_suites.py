"""Do no harm on code nobody here wrote: thread-heavy libraries' own test suites, plain pytest vs ``pytest --lockwatch``.

    python bench/third_party_suites.py                         # every library below
    python bench/third_party_suites.py --library readerwriterlock --order warn

For each library: its sdist is downloaded once (``pip download --no-binary
:all: --no-deps``) into the cache directory; a virtual environment is made
there with this checkout of lockwatch (editable), pytest, pytest-timeout, the
library and its test dependencies; the unpacked sdist's tests then run twice,
with plain ``pytest`` and with ``pytest --lockwatch`` (default order mode:
raise, as a user gets it). Printed per library: pass counts and wall times,
the tests that pass without lockwatch and not with it, and what lockwatch
reported (its dumps: kind and summary).

Exit status 1 when a test regressed (or a run did not finish), 0 otherwise.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Library:
    spec: str                 # what pip downloads: name==version (pinned: results stay comparable)
    tests: tuple[str, ...]    # test paths inside the unpacked sdist
    deps: tuple[str, ...] = ()  # test dependencies
    test_timeout: float = 120.0  # pytest-timeout's limit per test


LIBRARIES = {
    # The first reader takes the resource lock, the last reader releases it (issue 10).
    # Its test_multi_thread runs 30 s per lock type, six types: 3 minutes.
    "readerwriterlock": Library("readerwriterlock==1.0.10", ("tests/test_rwlock.py",), ("typing_extensions",),
                                test_timeout=480.0),
    # Reader-writer locks, lock decorators, interprocess locks.
    "fasteners": Library(
        "fasteners==0.20",
        ("tests/test_reader_writer_lock.py", "tests/test_lock.py", "tests/test_decorators.py", "tests/test_helpers.py",
         "tests/test_process_lock.py"),
        ("more_itertools", "diskcache"),
    ),
    # Actors: one thread per actor, futures, a registry behind a lock.
    "pykka": Library("pykka==4.5.0", ("tests",), ("pytest-mock",)),
    # Thread pools and @concurrent/@asynchronous thread decorators (the process-pool tests are left out: slow here).
    "pebble": Library(
        "pebble==5.2.3",
        ("test/test_thread_pool.py", "test/test_concurrent_thread.py", "test/test_asynchronous_thread.py"),
    ),
    # Memoizing caches shared between threads, with a user-supplied lock.
    "cachetools": Library("cachetools==8.0.0", ("tests",)),
}


@dataclass
class Run:
    seconds: float = 0.0
    finished: bool = True
    outcomes: dict[str, str] = field(default_factory=dict)   # test id -> pass/fail/error/skip
    messages: dict[str, str] = field(default_factory=dict)   # test id -> first line of its failure
    dumps: list[tuple[str, str]] = field(default_factory=list)
    tail: str = ""


def sh(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]


def sdist(cache: Path, library: Library) -> Path:
    """The library's sdist in the cache, downloaded the first time."""
    where = cache / "sdists"
    where.mkdir(parents=True, exist_ok=True)
    name, version = library.spec.split("==")
    for candidate in where.glob("*"):
        base = candidate.name.lower().replace("_", "-")
        if base.startswith(f"{name.lower()}-{version}.") and candidate.name.endswith((".tar.gz", ".zip")):
            return candidate
    result = sh([sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps", "-d", str(where),
                 library.spec])
    if result.returncode != 0:
        raise RuntimeError(f"pip download {library.spec} failed: {result.stderr.strip()[-500:]}")
    return sdist(cache, library)


def environment(cache: Path, name: str, library: Library, archive: Path) -> Path:
    """A venv with lockwatch (this checkout, editable), pytest, the library and its test deps; made once."""
    venv = cache / "venvs" / name
    python = venv / "bin" / "python"
    stamp = venv / "lockwatch-bench.json"
    wanted = {"spec": library.spec, "deps": list(library.deps), "repo": str(REPO)}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return python
    shutil.rmtree(venv, ignore_errors=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", "-e", str(REPO), "pytest", "pytest-timeout", *library.deps],
        [str(python), "-m", "pip", "install", "-q", str(archive)],
    ]
    for step in steps:
        result = sh(step)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(step[:5])}... failed: {result.stderr.strip()[-800:]}")
    stamp.write_text(json.dumps(wanted))
    return python


def unpack(archive: Path, into: Path) -> Path:
    with tarfile.open(archive) as tar:
        if sys.version_info >= (3, 12):
            tar.extractall(into, filter="data")
        else:
            tar.extractall(into)  # noqa: S202 - a pinned sdist from the package index
    (top,) = [p for p in into.iterdir() if p.is_dir()]
    return top


def run_suite(python: Path, source: Path, library: Library, lockwatch_args: list[str] | None, timeout: float) -> Run:
    work = Path(tempfile.mkdtemp(prefix="lw-3p-"))
    junit = work / "junit.xml"
    dump_dir = work / "dumps"
    command = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
               "--timeout", str(library.test_timeout), f"--junitxml={junit}", *library.tests]
    if lockwatch_args is not None:
        command += ["--lockwatch", f"--lockwatch-dump-dir={dump_dir}", *lockwatch_args]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCKWATCH", "PYTEST"))}
    run = Run()
    started = time.monotonic()
    try:
        result = subprocess.run(command, cwd=source, env=env, capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL)
        output = result.stdout + result.stderr
    except subprocess.TimeoutExpired as exc:
        run.finished = False
        output = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    run.seconds = time.monotonic() - started
    if junit.exists():
        _parse_junit(junit, run)
    else:
        run.finished = False
    if not run.finished:
        run.tail = "\n".join(output.rstrip().splitlines()[-30:])
    for path in sorted(glob.glob(str(dump_dir / "*.json"))):
        try:
            data = json.loads(Path(path).read_text())
            run.dumps.append((str(data.get("kind")), " ".join(str(data.get("summary", "")).split())[:400]))
        except (OSError, ValueError):
            continue
    shutil.rmtree(work, ignore_errors=True)
    return run


def _parse_junit(path: Path, run: Run) -> None:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        run.finished = False
        return
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '?')}"
        outcome = "pass"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "fail" if child.tag == "failure" else "error"
                message = (child.get("message") or child.text or "").strip().splitlines()
                run.messages[name] = message[0][:300] if message else ""
                break
            if child.tag == "skipped":
                outcome = "skip"
        # A test can have a pass and a teardown error: the worst outcome counts.
        if run.outcomes.get(name) in ("fail", "error"):
            continue
        run.outcomes[name] = outcome


def summary(run: Run) -> str:
    counts: dict[str, int] = {}
    for outcome in run.outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    text = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    return f"{run.seconds:.1f} s, {text or 'no results'}" + ("" if run.finished else " (did not finish)")


def compare(name: str, plain: Run, watched: Run) -> bool:
    """Print the comparison; True when lockwatch did no harm."""
    print(f"\n== {name}\n  plain:            {summary(plain)}\n  pytest --lockwatch: {summary(watched)}"
          f"   (wall-time ratio {watched.seconds / plain.seconds if plain.seconds else float('nan'):.2f}x)")
    regressions = [t for t, o in sorted(plain.outcomes.items()) if o == "pass" and watched.outcomes.get(t, "missing") != "pass"]
    for test in regressions:
        print(f"  REGRESSION {watched.outcomes.get(test, 'missing'):7} {test}\n      {watched.messages.get(test, '')}")
    flaky = [t for t, o in sorted(plain.outcomes.items()) if o in ("fail", "error") and watched.outcomes.get(t) == "pass"]
    for test in flaky:
        print(f"  (fails plain, passes under lockwatch: {test}: {plain.messages.get(test, '')})")
    failing = ("fail", "error")
    both = [t for t, o in sorted(plain.outcomes.items()) if o in failing and watched.outcomes.get(t) in failing]
    for test in both:
        print(f"  (fails in both runs: {test}: {plain.messages.get(test, '')[:150]})")
    if not regressions:
        print("  no regressions")
    for kind, text in watched.dumps:
        print(f"  lockwatch {kind}: {text}")
    for label, run in (("plain", plain), ("lockwatch", watched)):
        if not run.finished:
            print(f"  the {label} run did not finish; output ends:\n    " + run.tail.replace("\n", "\n    "))
    return not regressions and watched.finished and plain.finished


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", action="append", choices=sorted(LIBRARIES), help="a library to run (repeatable)")
    parser.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "lockwatch-third-party"),
                        help="where sdists and virtual environments are kept (default ~/.cache/lockwatch-third-party)")
    parser.add_argument("--order", choices=("raise", "warn", "off"), default="raise",
                        help="--lockwatch-order for the watched run (default raise, the plugin's default)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one suite run may take (default 900)")
    options = parser.parse_args(argv)
    cache = Path(options.cache)
    ok = True
    table = []
    for name in options.library or list(LIBRARIES):
        library = LIBRARIES[name]
        try:
            archive = sdist(cache, library)
            python = environment(cache, name, library, archive)
        except RuntimeError as exc:
            print(f"\n== {name}: cannot set up: {exc}")
            ok = False
            continue
        source = unpack(archive, Path(tempfile.mkdtemp(prefix=f"lw-3p-{name}-")))
        plain = run_suite(python, source, library, None, options.timeout)
        watched = run_suite(python, source, library, [f"--lockwatch-order={options.order}"], options.timeout)
        shutil.rmtree(source.parent, ignore_errors=True)
        good = compare(f"{name} ({library.spec})", plain, watched)
        ok &= good
        passed_plain = sum(1 for o in plain.outcomes.values() if o == "pass")
        passed = sum(1 for o in watched.outcomes.values() if o == "pass")
        table.append(f"| {library.spec} | {len(plain.outcomes)} | {passed_plain} | {passed} | {plain.seconds:.1f} "
                     f"| {watched.seconds:.1f} | {len(watched.dumps)} | {'ok' if good else 'FAIL'} |")
    print(f"\n| library | tests | pass plain | pass --lockwatch (order={options.order}) | plain s | lockwatch s "
          "| lockwatch dumps | verdict |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    print("\n".join(table))
    print(f"\nRESULT: {'OK: no regressions' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
