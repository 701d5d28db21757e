"""Core selection: the C core when it is built, the Python twin otherwise, and both on the same state."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import threading

import pytest

import lockwatch
from lockwatch import _locks, _state

pytestmark = pytest.mark.timeout(60)

C_CORE_BUILT = any(
    name.startswith("_ccore.") and not name.endswith(".c") for name in os.listdir(os.path.dirname(_locks.__file__))
)


def core_in_subprocess(**env: str) -> str:
    """What ``lockwatch.core()`` says in a fresh interpreter with ``env`` added."""
    result = subprocess.run(
        [sys.executable, "-c", "import lockwatch; print(lockwatch.core())"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=30, check=True,
    )
    return result.stdout.strip()


def test_pure_is_forced_by_the_environment() -> None:
    assert core_in_subprocess(LOCKWATCH_PURE="1") == "Python (LOCKWATCH_PURE=1)"


def test_default_core_is_c_where_built() -> None:
    env = {key: value for key, value in os.environ.items() if key != "LOCKWATCH_PURE"}
    result = subprocess.run(
        [sys.executable, "-c", "import lockwatch; print(lockwatch.core())"],
        env=env, capture_output=True, text=True, timeout=30, check=True,
    )
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        assert result.stdout.strip() == "Python (free-threaded build)"
    elif C_CORE_BUILT:
        assert result.stdout.strip() == "C"
    else:
        assert result.stdout.strip() == "Python (C core not built)"


def test_this_process_runs_the_core_it_names() -> None:
    if lockwatch.core() == "C":
        assert type(lockwatch.Lock()).acquire.__qualname__ == "LockCore.acquire"
        assert type(lockwatch.RLock()).acquire.__qualname__ == "RLockCore.acquire"
    else:
        assert lockwatch.Lock.acquire is _locks._PyLockCore.acquire
        assert lockwatch.RLock.acquire is _locks._PyRLockCore.acquire
    assert isinstance(lockwatch.Lock(), _locks.InstrumentedLock)
    assert isinstance(lockwatch.RLock(), _locks.InstrumentedLock)


@pytest.mark.parametrize("cls", [lockwatch.Lock, lockwatch.RLock])
def test_fields_are_the_python_cores_attributes(cls: type) -> None:
    """Whichever core runs, the slow paths and the reporters read and write the same attributes."""
    lock = cls(name="fields")
    me = _state.current_state()
    assert lock._owner is None and lock._parked is None and lock._preds is None
    assert lock.id == f"L{lock._serial}" and lock._cls.name == "fields"
    with lock:
        assert lock._owner is me and me.held[-1] is lock
        assert me.ctx.cls is lock._cls
        assert lock.locked()
        if cls is lockwatch.RLock:
            with lock:
                assert lock._count == 2
            assert lock._count == 1
    assert lock._owner is None and lock not in me.held and not lock.locked()
    lock._parked = []
    lock._preds = {}
    assert lock._parked == [] and lock._preds == {}


def test_each_thread_gets_its_own_state_and_a_new_thread_a_new_one() -> None:
    lock = lockwatch.Lock()
    seen: list[_state.ThreadState] = []

    def work() -> None:
        with lock:
            seen.append(lock._owner)  # type: ignore[arg-type]
            assert lock._owner is _state._local.state

    for _ in range(3):
        thread = threading.Thread(target=work)
        thread.start()
        thread.join(10)
    assert len({state.token for state in seen}) == 3
    with lock:
        assert lock._owner is _state.current_state()


def test_state_made_by_the_python_side_is_the_one_the_core_uses() -> None:
    """A thread whose state was made by Python code (a slow path) is the same thread to the core."""
    results: list[bool] = []

    def work() -> None:
        state = _state.current_state()  # made by Python first
        lock = lockwatch.RLock()
        with lock:
            results.append(lock._owner is state and lock._is_owned())

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(10)
    assert results == [True]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")  # 3.12+: helper threads of other tests
def test_forked_child_keeps_its_state_and_its_locks() -> None:
    lock = lockwatch.RLock()
    with lock:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: the forking thread's state and its held lock carry over
            try:
                ok = lock._is_owned() and lock._owner is _state.current_state()
                lock.release()
                with lockwatch.Lock():
                    pass
                ok = ok and not lock.locked()
                os.write(write, b"ok" if ok else b"no")
            finally:
                os._exit(0)
        os.close(write)
        answer = os.read(read, 2)
        os.close(read)
        os.waitpid(pid, 0)
    assert answer == b"ok"


def test_a_failing_order_check_gives_the_lock_back() -> None:
    """An exception from the Python slow path leaves the lock as it was (both cores)."""
    outer, inner = lockwatch.Lock(), lockwatch.Lock()
    checker = _state.order_checker

    def refuse(state: object, lock: object) -> None:
        raise KeyboardInterrupt

    _state.order_checker = refuse
    try:
        with outer:
            with pytest.raises(KeyboardInterrupt):
                inner.acquire()
            assert not inner.locked() and inner._owner is None
            assert _state.current_state().held[-1] is outer
    finally:
        _state.order_checker = checker
    assert not outer.locked()


@pytest.mark.skipif(not C_CORE_BUILT, reason="the C core is not built here")
def test_c_core_refuses_a_state_of_another_shape() -> None:
    """The C core checks the Python core's classes field by field before it takes them."""
    code = (
        "import _thread, types\n"
        "import lockwatch\n"
        "from lockwatch import _ccore, _state\n"
        "fake = types.ModuleType('fake')\n"
        "fake.__dict__.update(vars(_state))\n"
        "class Context:\n"
        "    __slots__ = ('parent', 'cls', 'children', 'ok')  # no same_ok\n"
        "fake.Context = Context\n"
        "try:\n"
        "    _ccore.configure(fake, fake, _thread.allocate_lock(), _thread.allocate_lock)\n"
        "except AttributeError as exc:\n"
        "    print('refused:', exc)\n"
        "try:\n"
        "    _ccore.LockCore()\n"
        "except RuntimeError as exc:\n"
        "    print('unused:', exc)\n"
    )
    env = {**os.environ, "LOCKWATCH_PURE": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30, check=True)
    assert "refused:" in result.stdout and "same_ok" in result.stdout
    assert "unused: lockwatch's C core is not in use" in result.stdout


@pytest.mark.skipif(not C_CORE_BUILT, reason="the C core is not built here")
def test_c_core_that_does_not_fit_leaves_the_python_core(monkeypatch: pytest.MonkeyPatch) -> None:
    from lockwatch import _ccore  # type: ignore[attr-defined]

    def misfit(*args: object) -> None:
        raise TypeError("lockwatch._state does not have the expected shape")

    monkeypatch.delenv("LOCKWATCH_PURE", raising=False)
    monkeypatch.setattr(_ccore, "configure", misfit)
    assert _locks._load_core() == (None, "Python (C core unusable: lockwatch._state does not have the expected shape)")
