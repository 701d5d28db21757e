"""CPython's own lock test suite (test.lock_tests) run against lockwatch's classes."""

from __future__ import annotations

import threading

import pytest

lock_tests = pytest.importorskip("test.lock_tests", reason="CPython's test package is not installed")

import lockwatch  # noqa: E402


class TestLock(lock_tests.LockTests):
    locktype = staticmethod(lockwatch.Lock)


class TestRLock(lock_tests.RLockTests):
    locktype = staticmethod(lockwatch.RLock)


class _Patched:
    """Run a stdlib test class with threading patched, as a user's program would be."""

    def setUp(self) -> None:
        self._lockwatch_patch = lockwatch.patch(on_deadlock="report", order="off")
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        try:
            super().tearDown()  # type: ignore[misc]
        finally:
            self._lockwatch_patch.stop()


class TestPatchedCondition(_Patched, lock_tests.ConditionTests):
    condtype = staticmethod(threading.Condition)


class TestPatchedConditionAsRLock(_Patched, lock_tests.RLockTests):
    # Condition(), with its default RLock, exports the RLock API.
    locktype = staticmethod(lambda: threading.Condition())

    def test_recursion_count(self) -> None:
        pytest.skip("Condition does not expose _recursion_count()")


class TestPatchedRLock(_Patched, lock_tests.RLockTests):
    locktype = staticmethod(lambda: threading.RLock())


class TestPatchedLock(_Patched, lock_tests.LockTests):
    locktype = staticmethod(lambda: threading.Lock())


class TestPatchedEvent(_Patched, lock_tests.EventTests):
    eventtype = staticmethod(threading.Event)


class TestPatchedSemaphore(_Patched, lock_tests.SemaphoreTests):
    semtype = staticmethod(threading.Semaphore)


class TestPatchedBoundedSemaphore(_Patched, lock_tests.BoundedSemaphoreTests):
    semtype = staticmethod(threading.BoundedSemaphore)


class TestPatchedBarrier(_Patched, lock_tests.BarrierTests):
    barriertype = staticmethod(threading.Barrier)


def test_patched_classes_are_instrumented() -> None:
    """The suites above must really exercise lockwatch's locks, not the originals."""
    with lockwatch.patch(order="off"):
        assert isinstance(threading.Lock(), lockwatch.Lock)
        assert isinstance(threading.Condition()._lock, lockwatch.RLock)  # type: ignore[attr-defined]
        assert isinstance(threading.Semaphore()._cond._lock, lockwatch.Lock)  # type: ignore[attr-defined]
        assert isinstance(threading.Event()._cond._lock, lockwatch.Lock)  # type: ignore[attr-defined]
        assert isinstance(threading.Barrier(2)._cond._lock, lockwatch.Lock)  # type: ignore[attr-defined]


class _PatchedAsUnderPytest(_Patched):
    """As ``pytest --lockwatch`` runs: break mode (blocked acquires park) and lock-order checking on."""

    def setUp(self) -> None:
        self._lockwatch_patch = lockwatch.patch(on_deadlock="break", order="warn", signal=False)
        super(_Patched, self).setUp()  # type: ignore[misc]


class TestBreakModeLock(_PatchedAsUnderPytest, lock_tests.LockTests):
    locktype = staticmethod(lambda: threading.Lock())


class TestBreakModeRLock(_PatchedAsUnderPytest, lock_tests.RLockTests):
    locktype = staticmethod(lambda: threading.RLock())


class TestBreakModeCondition(_PatchedAsUnderPytest, lock_tests.ConditionTests):
    condtype = staticmethod(threading.Condition)


class TestBreakModeSemaphore(_PatchedAsUnderPytest, lock_tests.SemaphoreTests):
    semtype = staticmethod(threading.Semaphore)


class TestBreakModeBarrier(_PatchedAsUnderPytest, lock_tests.BarrierTests):
    barriertype = staticmethod(threading.Barrier)
