"""Dump files: names, atomic writes, round trips, the shipped schema, and clear errors on bad dumps."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from _sample_reports import SAMPLES, deadlock, join_cycle, orphaned_lock, pool_starvation, real_deadlock, task_cycle

import lockwatch
from lockwatch import _dump, _render
from lockwatch._dump import dump_json, load_dump, write_report
from lockwatch._errors import DumpError
from lockwatch._model import AwaitedInfo, CycleStep, Frame, Report

SCHEMA = Path(lockwatch.__file__).parent / "dump-schema.json"


@pytest.fixture(scope="module")
def real_report() -> Report:
    return real_deadlock()


def _only_line(exc: pytest.ExceptionInfo[DumpError]) -> str:
    message = str(exc.value)
    assert "\n" not in message and message
    return message


# -- writing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_round_trip(tmp_path: Path, name: str) -> None:
    report = SAMPLES[name]()
    paths = write_report(report, tmp_path / "dumps")
    assert load_dump(paths[0]) == report


@pytest.mark.timeout(30)
def test_round_trip_of_a_real_deadlock(tmp_path: Path, real_report: Report) -> None:
    paths = write_report(real_report, tmp_path)
    assert load_dump(paths[0]) == real_report
    assert len(real_report.cycles) == 1 and real_report.cycles[0][0].lock


def test_names_and_companions(tmp_path: Path) -> None:
    report = deadlock()
    paths = write_report(report, str(tmp_path / "new" / "dir"))  # the directory is created
    pattern = rf"deadlock-\d{{8}}-\d{{6}}-{report.pid}-1"
    assert re.fullmatch(pattern + r"\.json", os.path.basename(paths[0]))
    base = paths[0][: -len(".json")]
    expected = [base + ".json", base + ".dot"] + ([base + ".svg"] if _render.has_dot() else [])
    assert paths == expected
    assert _dump.wait_drawings(30)  # the pictures are drawn by a child process
    assert Path(base + ".dot").read_text(encoding="utf-8") == _render.to_dot(report)
    if _render.has_dot():
        assert "<svg" in Path(base + ".svg").read_text(encoding="utf-8")
    assert sorted(os.listdir(tmp_path / "new" / "dir")) == sorted(os.path.basename(p) for p in paths)


def test_json_is_pretty_sorted_and_stable(tmp_path: Path) -> None:
    first, second = write_report(deadlock(), tmp_path)[0], write_report(deadlock(), tmp_path)[0]
    text = Path(first).read_text(encoding="utf-8")
    assert text == Path(second).read_text(encoding="utf-8") == dump_json(deadlock())
    assert text.startswith('{\n  "all_asleep": false,\n  "argv": [') and text.endswith("}\n")
    assert list(json.loads(text)) == sorted(json.loads(text))
    assert json.loads(text)["lockwatch"] == 1


def test_several_dumps_in_one_second_get_unique_names(tmp_path: Path) -> None:
    paths = [write_report(deadlock(), tmp_path)[0] for _ in range(12)]
    assert len(set(paths)) == 12
    assert sorted(int(p.rsplit("-", 1)[1][: -len(".json")]) for p in paths) == list(range(1, 13))


@pytest.mark.timeout(30)
def test_concurrent_writers_never_share_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_dump, "_start_drawing", lambda json_path: [])  # keep it fast: JSON only
    start = threading.Barrier(8, timeout=10)
    results: list[str] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            start.wait()
            for _ in range(5):
                results.append(write_report(deadlock(), tmp_path)[0])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not errors and len(results) == 40 and len(set(results)) == 40
    assert all(load_dump(path) == deadlock() for path in results)


def test_no_temporary_files_are_left(tmp_path: Path) -> None:
    write_report(deadlock(), tmp_path)
    assert _dump.wait_drawings(30)
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".") or name.endswith(".tmp")]


def test_a_failed_write_leaves_no_partial_dump(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match=f"cannot write a dump in {re.escape(str(tmp_path))}: No space left on device"):
        write_report(deadlock(), tmp_path)
    assert os.listdir(tmp_path) == []


def test_without_hard_links_names_are_still_unique(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: Any, dst: Any, **kwargs: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    paths = [write_report(deadlock(), tmp_path)[0] for _ in range(3)]
    assert len(set(paths)) == 3 and all(load_dump(p) == deadlock() for p in paths)
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_unwritable_dump_dir_raises_oserror_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match=re.escape(str(blocker / "dumps"))):
        write_report(deadlock(), blocker / "dumps")


def _fake_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> Path:
    """Put a fake Graphviz ``dot`` first on PATH (the drawing child inherits the environment)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "dot"
    fake.write_text("#!/bin/sh\n" + script)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return fake


@pytest.mark.timeout(60)
def test_svg_failure_is_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    _fake_dot(tmp_path, monkeypatch, "echo 'Error: out of memory' >&2\nexit 1\n")
    dumps = tmp_path / "dumps"
    paths = write_report(deadlock(), dumps)
    assert [Path(p).suffix for p in paths] == [".json", ".dot", ".svg"]
    assert _dump.wait_drawings(30)
    assert sorted(Path(p).suffix for p in dumps.iterdir()) == [".dot", ".json"]
    err = capfd.readouterr().err
    assert f"lockwatch: could not draw {Path(paths[2]).name}: Graphviz's 'dot' failed to draw svg: Error: out of memory\n" in err


@pytest.mark.timeout(60)
def test_dot_failure_keeps_the_json(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    report = deadlock()
    blocker = tmp_path / f"deadlock-{_dump._stamp(report.created)}-4242-1.dot"
    blocker.mkdir()  # the .dot cannot be written where a directory stands
    paths = write_report(report, tmp_path)
    assert _dump.wait_drawings(30)
    assert load_dump(paths[0]) == report and blocker.is_dir()
    assert f"lockwatch: could not draw {blocker.name}: " in capfd.readouterr().err


@pytest.mark.timeout(60)
def test_no_svg_without_graphviz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    paths = write_report(deadlock(), tmp_path)
    assert [Path(p).suffix for p in paths] == [".json", ".dot"]
    assert _dump.wait_drawings(30)
    assert Path(paths[1]).read_text(encoding="utf-8") == _render.to_dot(deadlock())


def test_odd_created_time_still_gives_a_name(tmp_path: Path) -> None:
    path = write_report(deadlock().replace(created="yesterday", kind="deadlock"), tmp_path)[0]
    assert re.fullmatch(r"deadlock-\d{8}-\d{6}-4242-1\.json", os.path.basename(path))


# -- reading ------------------------------------------------------------------------------------


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DumpError) as info:
        load_dump(tmp_path / "nope.json")
    assert _only_line(info) == f"{tmp_path / 'nope.json'}: no such file"


def test_load_directory(tmp_path: Path) -> None:
    with pytest.raises(DumpError) as info:
        load_dump(tmp_path)
    assert _only_line(info) == f"{tmp_path}: is a directory, not a dump file"


def test_load_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "d.json"
    path.write_text("{}")

    def denied(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    # Tests may run as root, where chmod 000 does not stop reading: fail the open instead.
    monkeypatch.setattr(_dump, "open", denied, raising=False)
    with pytest.raises(DumpError) as info:
        load_dump(path)
    assert _only_line(info) == f"{path}: cannot read it: Permission denied"


@pytest.mark.parametrize(
    "content,expected",
    [
        (b"\xff\xfe\x00garbage", "not a lockwatch dump (not UTF-8 text: bad byte at offset 0)"),
        (b"", "not a lockwatch dump (the file is empty)"),
        (b'{\n  "lockwatch": 1,\n  "kind": }', "not JSON: Expecting value at line 3, column 11"),
        (b"[1, 2]", 'not a lockwatch dump (no "lockwatch" format version key)'),
        (b'{"name": "some other tool"}', 'not a lockwatch dump (no "lockwatch" format version key)'),
        (b'{"lockwatch": "1"}', "not a lockwatch dump (format version '1' is not an integer)"),
        (b'{"lockwatch": 2, "kind": "deadlock"}', "dump format version 2 is newer than this lockwatch understands"),
        (b'{"lockwatch": 1, "kind": "deadlock", "created": "x", "pid": 1, "argv": [], "python": "3"}',
         "malformed dump: dump has no 'threads'"),
        (b"[" * 100000, "not a lockwatch dump (JSON nested too deeply)"),
    ],
    ids=["not-utf8", "empty", "not-json", "json-list", "other-json", "version-type", "newer", "malformed", "deep"],
)
def test_load_bad_content(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "d.json"
    path.write_bytes(content)
    with pytest.raises(DumpError) as info:
        load_dump(path)
    message = _only_line(info)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_load_accepts_extra_keys_and_a_bom(tmp_path: Path) -> None:
    data = deadlock().to_dict()
    data["written_by"] = "a future lockwatch 1.x"
    data["threads"][0]["cpu"] = 0.5
    path = tmp_path / "d.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(data).encode("utf-8"))
    assert load_dump(path) == deadlock()


# -- the shipped JSON schema ---------------------------------------------------------------------


def _validate(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str = "$") -> None:
    """Just enough of JSON Schema 2020-12 for our schema (no jsonschema dependency)."""
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        _validate(value, target, root, where)
    if "const" in schema:
        assert value == schema["const"], where
    if "enum" in schema:
        assert value in schema["enum"], where
    if "oneOf" in schema:
        matches = 0
        for option in schema["oneOf"]:
            try:
                _validate(value, option, root, where)
                matches += 1
            except AssertionError:
                pass
        assert matches == 1, where
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        checks = {
            "object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
            "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
            "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            "null": lambda v: v is None,
        }
        assert any(checks[t](value) for t in types), f"{where}: {value!r} is not {types}"
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            assert key in value, f"{where}: missing {key}"
        for key, item in value.items():
            if key in schema.get("properties", {}):
                _validate(item, schema["properties"][key], root, f"{where}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                _validate(item, schema["additionalProperties"], root, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _validate(item, schema["items"], root, f"{where}[{index}]")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and "minimum" in schema:
        assert value >= schema["minimum"], where


def test_schema_is_shipped_and_describes_every_dump() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    for make in SAMPLES.values():
        _validate(json.loads(dump_json(make())), schema, schema)
    # Every key the writer emits is documented in the schema.
    data = json.loads(dump_json(deadlock()))
    assert set(data) == set(schema["properties"])
    assert set(data["threads"][0]) == set(schema["$defs"]["thread"]["properties"])
    assert set(data["locks"][0]) == set(schema["$defs"]["lock"]["properties"])


def test_schema_rejects_what_load_dump_rejects() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    data = json.loads(dump_json(deadlock()))
    del data["threads"][0]["stack"]
    with pytest.raises(AssertionError):
        _validate(data, schema, schema)
    newer = json.loads(dump_json(deadlock())) | {"lockwatch": 2}
    with pytest.raises(AssertionError):
        _validate(newer, schema, schema)


@pytest.mark.timeout(30)
def test_schema_describes_a_real_dump(real_report: Report) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    _validate(json.loads(dump_json(real_report)), schema, schema)


def test_the_documented_example_is_a_valid_dump(tmp_path: Path) -> None:
    doc = (Path(__file__).parent.parent / "docs" / "dump-format.md").read_text(encoding="utf-8")
    example = doc.split("```json\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.json"
    path.write_text(example, encoding="utf-8")
    report = load_dump(path)
    assert report.kind == "deadlock" and [t.name for t in report.threads] == ["left", "right"]
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    _validate(json.loads(example), schema, schema)


# -- file modes ----------------------------------------------------------------------------------


@pytest.fixture
def umask() -> Any:
    """Set the process umask for one test (and put the old one back)."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _modes(directory: Path) -> dict[str, int]:
    return {p.suffix: p.stat().st_mode & 0o777 for p in directory.iterdir()}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mask,expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_dump_files_honour_the_umask(tmp_path: Path, umask: Any, mask: int, expected: int) -> None:
    """Was: 0644 whatever the umask (argv in a dump can hold a password)."""
    dumps = tmp_path / "dumps"
    dumps.mkdir(mode=0o755)
    umask(mask)
    write_report(deadlock(), dumps)
    assert _dump.wait_drawings(30)
    modes = _modes(dumps)
    assert modes[".json"] == modes[".dot"] == expected, {k: oct(v) for k, v in modes.items()}
    assert modes.get(".svg", expected) == expected


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["sticky", "world-writable", "another user's"])
def test_dump_files_are_private_in_a_shared_directory(tmp_path: Path, umask: Any, how: str) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    if how == "sticky":
        shared.chmod(0o1777)
    elif how == "world-writable":
        shared.chmod(0o777)
    else:
        if os.geteuid() != 0:
            pytest.skip("giving a directory to another user needs root")
        import pwd

        os.chown(shared, pwd.getpwnam("nobody").pw_uid, -1)
        shared.chmod(0o755)  # root writes there anyway; nobody could read files of ours
    umask(0o022)
    assert _dump.file_mode(str(shared)) == 0o600
    write_report(deadlock(), shared)
    assert _dump.wait_drawings(30)
    assert set(_modes(shared).values()) == {0o600}
    assert _dump.file_mode(str(tmp_path)) == 0o666  # one's own directory: the umask decides


# -- waits beyond locks: awaited entries, task nodes, chains, "all asleep" ------------------------

NEW_KEYS = ("awaited", "chains", "all_asleep")
NEW_THREAD_KEYS = ("kind", "waits_for", "loop_thread")


def test_new_keys_round_trip_through_the_model() -> None:
    for make in (join_cycle, task_cycle, pool_starvation, orphaned_lock):
        report = make()
        assert Report.from_dict(json.loads(dump_json(report))) == report
    join = Report.from_dict(join_cycle().to_dict())
    assert join.cycles[0][0] == CycleStep(7001, waits_for="J1") and join.cycles[0][0].target == "J1"
    assert join.cycles[0][1].lock == "L1" and join.cycles[0][1].target == "L1"
    entry = join.awaited_entry("J1")
    assert entry is not None and entry.kind == "thread" and entry.owners == (7002,) and entry.waiters == (7001,)
    assert join.awaited_entry("J2") is None
    tasks = Report.from_dict(task_cycle().to_dict())
    assert [(t.kind, t.loop_thread) for t in tasks.threads] == [("thread", None), ("task", 8001), ("task", 8001)]
    assert tasks.thread(1) is not None and tasks.thread(1).is_task  # type: ignore[union-attr]
    orphan = Report.from_dict(orphaned_lock().to_dict())
    assert orphan.all_asleep and orphan.chains[0][-1] == CycleStep(4001, lock="L4")
    pool = Report.from_dict(pool_starvation().to_dict())
    assert pool.awaited_entry("F2") == AwaitedInfo(
        id="F2", kind="pool", label="future of inner() in ThreadPoolExecutor-0", owners=(9002,), any_of=True,
        site=Frame("/app/crawl.py", 12, "outer"), state="pending", waiters=(9002,))


def test_a_v1_dump_without_the_new_keys_reads_with_defaults() -> None:
    data = deadlock().to_dict()
    for key in NEW_KEYS:
        del data[key]
    for thread in data["threads"]:
        for key in NEW_THREAD_KEYS:
            del thread[key]
    report = Report.from_dict(data)
    assert report == deadlock()
    assert report.awaited == () and report.chains == () and report.all_asleep is False
    assert all(t.kind == "thread" and t.waits_for is None and t.loop_thread is None for t in report.threads)
    # The steps of a dump written before waits_for: a lock each.
    assert [step.lock for step in report.cycles[0]] == ["L2", "L1"]


def test_waits_for_steps_still_carry_a_lock_for_older_readers() -> None:
    """A format 1 reader that predates waits_for requires "lock" (a string) in every step."""
    for make in (join_cycle, task_cycle, pool_starvation, orphaned_lock):
        data = json.loads(dump_json(make()))
        for steps in (*data["cycles"], *data["chains"]):
            for step in steps:
                assert isinstance(step["thread"], int) and isinstance(step["lock"], str)
                if "waits_for" in step:
                    assert step["lock"] == step["waits_for"]
    assert CycleStep(1, waits_for="F3").to_dict() == {"thread": 1, "waits_for": "F3", "lock": "F3"}
    assert CycleStep(1, lock="L3").to_dict() == {"thread": 1, "lock": "L3"}
    # A step as another writer may put it (no lock) reads too.
    assert CycleStep.from_dict({"thread": 1, "waits_for": "F3"}) == CycleStep(1, waits_for="F3")


def test_a_cycle_step_waits_for_exactly_one_thing() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        CycleStep(1)
    with pytest.raises(ValueError, match="exactly one"):
        CycleStep(1, lock="L1", waits_for="F1")
    assert CycleStep(1, "L1") == CycleStep(thread=1, lock="L1")  # positional calls keep working


def _bad(change: Any) -> dict[str, Any]:
    data = orphaned_lock().to_dict()
    change(data)
    return data


@pytest.mark.parametrize(
    "change,expected",
    [
        (lambda d: d["chains"][0].__setitem__(0, {"thread": 4002}),
         "cycle step of thread 4002 has neither a 'lock' nor a 'waits_for'"),
        (lambda d: d["chains"][0].__setitem__(0, {"thread": 4002, "lock": "L4", "waits_for": "J7"}),
         "cycle step of thread 4002 has both a 'lock' ('L4') and a 'waits_for' ('J7')"),
        (lambda d: d["cycles"].append([{"thread": 1, "lock": None}]),
         "cycle step of thread 1 has neither a 'lock' nor a 'waits_for'"),
        (lambda d: d["chains"][0][0].__setitem__("waits_for", 7), "cycle step 'waits_for' has type int"),
        (lambda d: d["awaited"][0].__setitem__("owners", ["4001"]), "awaited owners must be thread or task ids"),
        (lambda d: d["awaited"][0].__setitem__("owners", [True]), "awaited owners must be thread or task ids"),
        (lambda d: d["awaited"][0].__setitem__("waiters", [1.5]), "awaited waiters must be thread or task ids"),
        (lambda d: d["awaited"][0].pop("id"), "awaited entry has no 'id'"),
        (lambda d: d["awaited"][0].__setitem__("kind", None), "awaited entry 'kind' has type NoneType"),
        (lambda d: d["awaited"][0].__setitem__("any_of", 1), "awaited entry 'any_of' has type int"),
        (lambda d: d.__setitem__("awaited", {"J7": {}}), "dump 'awaited' has type dict"),
        (lambda d: d["awaited"].append("J8"), "expected an awaited entry, found str"),
        (lambda d: d.__setitem__("chains", [{"thread": 1}]), "expected a chain, found dict"),
        (lambda d: d.__setitem__("all_asleep", "yes"), "dump 'all_asleep' has type str"),
        (lambda d: d["threads"][0].__setitem__("kind", "greenlet"), "thread 'kind' is 'greenlet' (expected one of thread, task)"),
        (lambda d: d["threads"][0].__setitem__("waits_for", 7), "thread 'waits_for' has type int"),
        (lambda d: d["threads"][0].__setitem__("loop_thread", "8001"), "thread 'loop_thread' has type str"),
        (lambda d: d["locks"][0].__setitem__("waiters", ["4001"]), "lock waiters must be thread or task ids"),
    ],
    ids=["step-neither", "step-both", "step-null-lock", "step-waits-for-type", "owners-str", "owners-bool",
         "waiters-float", "awaited-no-id", "awaited-kind-type", "any-of-type", "awaited-dict", "awaited-str",
         "chain-not-list", "all-asleep-type", "thread-kind", "waits-for-type", "loop-thread-type", "lock-waiters"],
)
def test_bad_new_keys_are_clear_dump_errors(tmp_path: Path, change: Any, expected: str) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps(_bad(change)), encoding="utf-8")
    with pytest.raises(DumpError) as info:
        load_dump(path)
    message = _only_line(info)
    assert message.startswith(f"{path}: malformed dump: ") and expected in message, message


def test_schema_documents_the_new_keys() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    data = json.loads(dump_json(task_cycle()))
    assert set(data["awaited"][0]) == set(schema["$defs"]["awaited"]["properties"])
    assert set(data["threads"][1]) == set(schema["$defs"]["thread"]["properties"])
    assert set(data["cycles"][0][0]) == set(schema["$defs"]["cycle_step"]["properties"])
    bad = json.loads(dump_json(task_cycle()))
    bad["threads"][1]["kind"] = "coroutine"
    with pytest.raises(AssertionError):
        _validate(bad, schema, schema)


def test_every_documented_example_is_a_valid_dump(tmp_path: Path) -> None:
    doc = (Path(__file__).parent.parent / "docs" / "dump-format.md").read_text(encoding="utf-8")
    examples = [block.split("```", 1)[0] for block in doc.split("```json\n")[1:]]
    assert len(examples) == 3
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    reports = []
    for number, example in enumerate(examples):
        path = tmp_path / f"example-{number}.json"
        path.write_text(example, encoding="utf-8")
        reports.append(load_dump(path))
        _validate(json.loads(example), schema, schema)
    _, join, tasks = reports
    assert join.cycles == join_cycle().cycles and join.awaited == join_cycle().awaited
    assert tasks.cycles == task_cycle().cycles and tasks.awaited == task_cycle().awaited
    assert [t.kind for t in tasks.threads] == ["thread", "task", "task"]
