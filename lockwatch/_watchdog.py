"""The watchdog: lockwatch's own raw thread, the reporting side. Finds deadlocks and hangs, presents findings, reacts.

It starts lazily (the first wait that can last forever, the first finding, a
snapshot request, or a hang_timeout), never takes an instrumented lock, and
imports nothing at report time: what reporting needs was imported when
lockwatch was patched in, so a deadlocked thread holding the import lock or
logging's lock cannot catch it. Pictures are drawn by a child process.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import linecache
import os
import sys
import threading
import traceback
import types
from _thread import allocate_lock as _allocate_raw_lock
from _thread import get_ident, start_new_thread
from collections.abc import Callable
from time import monotonic, sleep
from typing import Any

from lockwatch import _acquired, _aio, _detect, _dump, _events, _graph, _order, _signals, _snapshot, _state, _text
from lockwatch._config import DEADLOCK_EXIT_STATUS, Config
from lockwatch._detect import Wait
from lockwatch._errors import DeadlockError
from lockwatch._model import CycleStep, Report

# A wait as the watchdog sees it: (thread token, lock serial, wait_since, owner token).
# Equal keys on two consecutive looks mean the very same wait, still blocked on the same owner.
# Tokens, not idents: a new thread that reuses a dead thread's ident is another thread.
WaitKey = tuple[int, int, float, "int | None"]

#: How long deactivate() and interpreter exit wait for the watchdog thread to finish.
STOP_TIMEOUT = 2.0
#: How long the exit reaction and interpreter exit wait for pictures still being drawn.
EXIT_DRAWING_TIMEOUT = 5.0
#: Consecutive looks with nothing to watch after which the watchdog thread ends.
IDLE_LOOKS = 1
#: How soon after it starts the watchdog takes its first look.
FIRST_LOOK = 0.05
#: A wait that closed a chain of waits on its own waiter is looked at again this much later:
#: the same waits on both looks are a deadlock, a hand-off in flight has moved on.
QUICK_RECHECK = 0.05


def _untimed_condition_wait_lines() -> frozenset[int] | None:
    """Lines of Condition.wait that block without a timeout (``waiter.acquire()``).

    A timed Condition wait (``Event.wait(1.0)`` in a polling loop) ends by itself
    and is no hang; where the source cannot be read, every wait counts. Read
    with linecache and the code's own line table (``inspect`` costs start-up time).
    """
    code = threading.Condition.wait.__code__
    try:
        lines = {line for _start, _end, line in code.co_lines() if line}
        found = frozenset(
            line for line in lines if linecache.getline(code.co_filename, line).strip() == "waiter.acquire()"
        )
    except Exception:  # noqa: BLE001  (pragma: no cover - stdlib source missing)
        return None
    return found or None


_CONDITION_WAIT_CODE = threading.Condition.wait.__code__
_CONDITION_WAIT_FOR_CODE = threading.Condition.wait_for.__code__
_UNTIMED_WAIT_LINES = _untimed_condition_wait_lines()

# Things said once per process on stderr (an error inside a look, an unwritable dump_dir...).
_said: set[str] = set()


def _say_once(key: str, message: str) -> None:
    if key in _said:
        return
    _said.add(key)
    try:
        sys.stderr.write(f"lockwatch: {message}\n")
        sys.stderr.flush()
    except Exception:  # noqa: BLE001  (stderr closed or broken: nothing sensible left to do)
        pass


class _Watchdog:
    """One watchdog thread and what it remembers between two looks."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.dump_dir = os.path.abspath(config.dump_dir)
        self.stopping = False
        self.snapshot_requested = False
        self.ident: int | None = None
        self.busy = False  # presenting findings drained from _state.findings
        self.held_back = False  # lock-order findings wait out signal_grace() in _state.findings
        # Held while nobody asked for the watchdog: releasing it wakes the sleeping thread.
        # Not held at first: whatever started the watchdog (a self-wait, a finding) is
        # looked at right away, not one interval later.
        self.wake = _allocate_raw_lock()
        # Held while the thread runs: stop() waits on it.
        self.finished = _allocate_raw_lock()
        self.finished.acquire()
        # Deadlocks: the untimed waits seen at the previous look, and cycles already reported.
        self.previous_waits: set[WaitKey] = set()
        self.reported: set[frozenset[WaitKey]] = set()
        # Waits for a Lock the waiter owns: (token, since) -> True (held on its own stack:
        # a deadlock) or False (a wait for another thread's release: a signal, never broken).
        self.self_waits: dict[tuple[int, float], bool] = {}
        # Hangs: the Condition.wait frame each thread was in at the previous look, since when.
        self.condition_waits: dict[int, tuple[types.FrameType, float]] = {}
        self.hangs_reported: set[Any] = set()
        # Waits of every kind (joins, futures, tasks, imports, dead owners): the previous look's
        # wait identities, and the stuck groups already reported.
        self.previous_any: dict[int, _graph.WaitKey] = {}
        self.reported_any: set[frozenset[_graph.WaitKey]] = set()
        self.suspect_seen = 0.0  # the last _state.suspected_at confirmed
        # "Every thread is asleep": the previous look's sleepers, and the episode reported.
        self.previous_asleep: frozenset[Any] | None = None
        self.asleep_reported: frozenset[Any] | None = None

    # --- life cycle ---------------------------------------------------------------

    def start(self) -> None:
        # Never waits: this may run in a user thread in the middle of an acquire.
        start_new_thread(self._run, ())

    def wake_up(self) -> None:
        try:
            self.wake.release()
        except RuntimeError:  # already woken and not yet asleep again
            pass

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        self.stopping = True
        self.wake_up()
        if self.ident is not None and self.ident != get_ident():
            if self.finished.acquire(True, timeout):
                self.finished.release()

    def request_snapshot(self) -> None:
        """Called from the SIGUSR1 handler: only flags and wakes (never blocks)."""
        self.snapshot_requested = True
        self.wake_up()

    def _run(self) -> None:
        self.ident = get_ident()
        _state.internal_thread_idents.add(self.ident)
        idle_looks = 0
        try:
            # The first look comes soon: most waits that start a watchdog (a Condition wait of
            # a few milliseconds) are over by then, and an idle watchdog leaves at once instead
            # of staying an interval (a program's thread count is its own again sooner).
            next_look = monotonic() + min(self.config.interval, FIRST_LOOK)
            while not self.stopping:
                if not _state.findings or self.held_back:
                    remaining = next_look - monotonic()
                    if self.held_back:
                        remaining = min(remaining, 0.05)
                    if remaining > 0:
                        # Woken early by a finding, a first wait, deactivate() or SIGUSR1.
                        self.wake.acquire(True, remaining)
                if self.stopping:
                    break
                self._guarded(self.present_findings)
                if self.snapshot_requested:
                    self.snapshot_requested = False
                    self._guarded(self.write_snapshot)
                self._guarded(self.look_at_self_waits)
                if _state.suspected_at > self.suspect_seen:
                    self.suspect_seen = _state.suspected_at
                    self._guarded(self.confirm_suspect)
                # Looks stay one interval apart, even after an early wake, so that
                # "the same wait on two looks" always means blocked for an interval.
                if monotonic() >= next_look:
                    self._guarded(self.look)
                    self._guarded(self.look_at_any_waits)
                    self._guarded(_dump.reap_drawings)
                    next_look = monotonic() + self.config.interval
                    idle_looks = idle_looks + 1 if self._idle() else 0
                    if idle_looks >= IDLE_LOOKS:
                        self._retire()
        finally:
            self._guarded(self.present_findings)
            _state.internal_thread_idents.discard(self.ident)
            self.finished.release()

    def _idle(self) -> bool:
        """Nothing to watch: no wait that could last forever, nothing to present or draw, no hang_timeout."""
        if self.config.hang_timeout is not None or _state.findings or self.snapshot_requested:
            return False
        if self.reported or self.self_waits or self.reported_any or not _dump.drawings_done():
            return False
        if _aio.waiting():
            return False  # a task blocked in an asyncio primitive
        return not any(
            (state.waiting_for is not None and not state.wait_timed)
            or (state.awaiting is not None and not state.await_timed)
            for state in _state.states()
        )

    def _retire(self) -> None:
        """Stop while idle, so that a program's thread count is its own again (a new watchdog starts when needed)."""
        self.stopping = True
        # A wait or a finding that came in meanwhile woke a watchdog that is leaving: start a fresh one.
        if not self._idle():
            _notify()

    def _guarded(self, step: Callable[[], Any]) -> None:
        """Run one step; an error inside lockwatch is said once and the watchdog carries on."""
        try:
            step()
        except Exception as exc:  # noqa: BLE001  (the watchdog must outlive its own bugs)
            where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
            place = f" (at {os.path.basename(where.filename)}:{where.lineno})" if where else ""
            _say_once(
                f"error:{type(exc).__name__}",
                f"internal error in the watchdog, carrying on: {exc!r}{place}",
            )

    # --- findings handed over by user threads ------------------------------------------

    def present_findings(self) -> None:
        """Present what acquiring threads recorded: lock-order findings, lockwatch's own errors."""
        self.busy = True
        held_back = []
        try:
            while _state.findings:
                finding = _state.findings.pop(0)
                kind = finding[0]
                if kind == "lock-order":
                    order_finding = finding[1]
                    if order_finding.involves_signal():
                        continue  # a hand-off lock, not a mutex: no order to keep (see _order)
                    if monotonic() - order_finding.found_at < self.signal_grace() and not self.stopping:
                        # A lock taken by one thread and released by another (a readers-writer
                        # lock's resource lock) shows it only at that release: wait for it a moment.
                        # Its locks are named now, while the objects holding them live.
                        self._guarded(functools.partial(_order.prepare_labels, order_finding))
                        held_back.append(finding)
                        continue
                    self._guarded(functools.partial(self._present_order, order_finding))
                elif kind == "declared-labels":
                    # Unnamed locks nested for the first time while a declared order is in force:
                    # lockwatch's labels may be the names it declares (see _order.check_declared_labels).
                    self._guarded(functools.partial(self._present_declared, *finding[1:]))
                elif kind == "internal-error":
                    _what, exc = finding[1], finding[2]
                    _say_once(
                        f"internal:{finding[1]}:{type(exc).__name__}",
                        f"internal error in {_what}: {exc!r}; that acquire went unchecked, "
                        "checking stays on (said once)",
                    )
        finally:
            _state.findings[:0] = held_back
            self.held_back = bool(held_back)
            self.busy = False

    def signal_grace(self) -> float:
        """How long a lock-order finding is held back before it is presented."""
        return min(max(self.config.interval, 0.2), 1.0)

    def _present_declared(self, before_ref: Any, lock_ref: Any) -> None:
        order_finding = _order.check_declared_labels(before_ref, lock_ref)
        if order_finding is not None:
            self._present_order(order_finding)

    def _present_order(self, finding: _order.Finding) -> None:
        try:
            report = _order.build_report(finding)
        except Exception:
            for carrier in finding.carriers:
                carrier.report_failed = True
            raise
        for carrier in finding.carriers:
            carrier.report = report
        _order.remember_report(finding, report)
        self.emit(report)

    # --- one look -------------------------------------------------------------------

    def look(self) -> None:
        now = monotonic()
        current: dict[WaitKey, _state.ThreadState] = {}
        signal_waits: set[WaitKey] = set()  # waits for a Lock the waiter owns, not on its stack
        for state in _state.states():
            lock = state.waiting_for
            since = state.wait_since
            # wait_timed waits end by themselves: they cannot deadlock forever.
            if lock is None or since is None or state.wait_timed or state.ident == self.ident:
                continue
            owner = lock._owner
            key = (state.token, lock._serial, since, None if owner is None else owner.token)
            if state.self_wait or owner is state:
                if self.self_waits.get((state.token, since)) is not False:
                    continue  # a self-deadlock: reported by look_at_self_waits, not a cycle to confirm
                # A wait for another thread's release (a Lock used as a signal): a hang at
                # most, never a deadlock.
                signal_waits.add(key)
            current[key] = state
        # A deadlock needs waits that have not changed since the previous look; while
        # there are none (the common case), no graph is built at all.
        persistent = [key for key in current if key in self.previous_waits and key not in signal_waits]
        self.previous_waits = set(current)
        if persistent:
            self._find_deadlocks(persistent, current)
        # Forget reported deadlocks whose waits are gone, so memory stays bounded
        # (a new deadlock of the same threads has new wait_since values anyway).
        self.reported = {cycle for cycle in self.reported if cycle <= self.previous_waits}
        if self.config.hang_timeout is not None:
            self._find_hangs(now, current)
        else:
            self.condition_waits.clear()

    def look_at_self_waits(self) -> None:
        """A thread waiting for a Lock it owns: a deadlock if the lock is held on its own stack.

        Held on the stack means an acquisition that is still active in one of the
        waiter's frames (a ``with`` block, or an ``acquire()`` whose frame has not
        returned). Otherwise the thread waits for another thread to release it (a
        Lock used as a signal): never a deadlock, a hang only after hang_timeout.
        """
        live = set()
        for state in _state.states():
            lock, since = state.waiting_for, state.wait_since
            if lock is None or since is None or not state.self_wait:
                continue
            key = (state.token, since)
            live.add(key)
            if key in self.self_waits:
                continue
            # Frames read after the wait began, and judged only if it is still the same wait
            # afterwards: then they are the waiting frames, not those of an earlier call.
            frame = sys._current_frames().get(state.ident)
            if frame is None:
                continue
            on_stack = _acquired.taken_on_stack(frame, lock) is not None
            del frame
            if state.waiting_for is not lock or state.wait_since != since:
                continue
            if on_stack:
                cycle = (CycleStep(thread=state.ident, lock=lock.id),)
                wait_key = (state.token, lock._serial, since, state.token)
                self._report_deadlock(cycle, frozenset([wait_key]), {wait_key: state}, confirm=False)
            # Decided (and reported) once per wait; a failed report is tried again at the next look.
            self.self_waits[key] = on_stack
        self.self_waits = {key: value for key, value in self.self_waits.items() if key in live}

    def _find_deadlocks(self, persistent: list[WaitKey], current: dict[WaitKey, _state.ThreadState]) -> None:
        by_token = {key[0]: key for key in persistent}
        waits = {key[0]: Wait(lock=current[key].waiting_for.id, owner=key[3])  # type: ignore[union-attr]
                 for key in persistent if current[key].waiting_for is not None}
        for token_cycle in _detect.find_cycles(waits):
            cycle_key = frozenset(by_token[step.thread] for step in token_cycle)
            if cycle_key in self.reported:
                continue
            idents = {key[0]: current[key].ident for key in cycle_key}
            cycle = tuple(CycleStep(thread=idents[step.thread], lock=step.lock) for step in token_cycle)
            first = cycle.index(min(cycle, key=lambda step: step.thread))
            cycle = cycle[first:] + cycle[:first]
            if self._report_deadlock(cycle, cycle_key, current):
                self.reported.add(cycle_key)

    def _report_deadlock(
        self,
        cycle: tuple[CycleStep, ...],
        cycle_key: frozenset[WaitKey],
        current: dict[WaitKey, _state.ThreadState],
        confirm: bool = True,
    ) -> bool:
        report = _snapshot.take("deadlock")
        waits = _detect.waits_in_report(report)
        # Re-check on the snapshot itself: what is reported is what the report shows.
        if confirm and cycle not in _detect.find_cycles(waits):
            return False
        in_cycle = {step.thread for step in cycle}
        behind = set(_detect.bystanders(waits, [cycle]))
        threads = tuple(
            dataclasses.replace(
                info,
                role="cycle" if info.id in in_cycle else "bystander" if info.id in behind else None,
            )
            for info in report.threads
        )
        report = report.replace(threads=threads, cycles=(cycle,))
        summary = "Deadlock: " + _detect.describe_cycle(cycle, report)
        reaction = self.config.on_deadlock
        victim_key: WaitKey | None = None
        if reaction == "break":
            # The wait that started last is the acquire that closed the cycle; ties by thread.
            victim_key = min(cycle_key, key=lambda key: (-key[2], key[0]))
            victim = current[victim_key]
            info = report.thread(victim.ident)
            summary += (
                f". lockwatch broke it: thread "
                f'"{info.name if info else victim.ident}" gets DeadlockError.'
            )
            report = report.replace(victim=victim.ident)
        report = report.replace(summary=summary)
        self.emit(report)
        if victim_key is not None:
            self._break(victim_key, current[victim_key], report)
        elif reaction == "exit":
            self._exit_process()
        elif callable(reaction):
            # On a thread of its own: a callable that never returns must not stop later reports.
            start_new_thread(_call_reaction, (reaction, report))
        return True

    def _break(self, key: WaitKey, state: _state.ThreadState, report: Report) -> None:
        lock = state.waiting_for
        if lock is None or lock._serial != key[1] or state.wait_since != key[2]:
            return  # the victim's wait ended meanwhile: the deadlock is already gone
        error = DeadlockError(f"{report.summary} (this thread's acquire() was refused)", report)
        state.pending_error = error
        if state.wait_since != key[2] and state.pending_error is error:
            state.pending_error = None  # a new wait started under our feet: not ours to break
            return
        try:
            state.parker.release()  # only the victim wakes up
        except RuntimeError:  # not parked (yet): it sees pending_error when it looks
            pass

    def _exit_process(self) -> None:
        # Everything found so far is presented before the process ends (held-back findings too).
        self.stopping = True
        self._guarded(self.present_findings)
        _dump.wait_drawings(EXIT_DRAWING_TIMEOUT)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001  (a broken stream must not stop the exit)
                pass
        _signals.unregister()
        # The main thread may be one of the deadlocked ones: only this thread can end the process.
        os._exit(DEADLOCK_EXIT_STATUS)

    # --- waits of every kind ------------------------------------------------------------

    def confirm_suspect(self) -> None:
        """A new wait closed a chain on its own waiter: two looks QUICK_RECHECK apart decide."""
        self.look()
        self.look_at_any_waits()
        sleep(QUICK_RECHECK)
        self.look()
        self.look_at_any_waits()

    def look_at_any_waits(self) -> None:
        """Deadlocks through joins, futures, tasks and imports, locks of dead owners, and "all asleep"."""
        graph = _graph.take(_snapshot.internal_thread_idents | {get_ident()})
        for error in graph.errors:
            _say_once(f"source:{type(error).__name__}", f"a wait reader failed, carrying on without it: {error!r}")
        persistent = {node: wait for node, wait in graph.waits.items() if self.previous_any.get(node) == graph.keys[node]}
        self.previous_any = graph.keys
        live_keys = set(graph.keys.values())
        self.reported_any = {group for group in self.reported_any if group <= live_keys}
        if persistent and (graph.beyond or graph.dead):
            stuck = _detect.find_stuck(persistent, graph.dead, graph.loops)
            for cycle in stuck.cycles:
                if all(step.lock is not None for step in cycle):
                    continue  # locks only: look() reports it (with break-mode victims)
                self._report_stuck(cycle, (), graph)
            # Every wait for the same orphaned lock is one story: one report.
            by_end: dict[str, list[tuple[CycleStep, ...]]] = {}
            for chain in stuck.chains:
                by_end.setdefault(chain[-1].target, []).append(chain)
            for chains in by_end.values():
                self._report_stuck((), tuple(chains), graph)
        self._look_for_all_asleep(graph)

    def _report_stuck(
        self, cycle: tuple[CycleStep, ...], chains: tuple[tuple[CycleStep, ...], ...], graph: _graph.LiveGraph
    ) -> None:
        steps = cycle or tuple(step for chain in chains for step in chain)
        group = frozenset(graph.keys[step.thread] for step in steps if step.thread in graph.keys)
        if group in self.reported_any:
            return
        report = _snapshot.take("deadlock")
        waits, dead, loops = _detect.any_waits_in_report(report)
        found = _detect.find_stuck(waits, dead, loops)
        # Re-checked on the snapshot itself: what is reported is what the report shows.
        if cycle and not any(set(cycle) == set(other) for other in found.cycles):
            return
        chains = tuple(chain for chain in chains if any(other[-len(chain):] == chain for other in found.chains))
        if not cycle and not chains:
            return
        in_cycle = {step.thread for step in steps}
        threads = tuple(
            dataclasses.replace(info, role="cycle" if info.id in in_cycle else info.role) for info in report.threads
        )
        report = report.replace(threads=threads, cycles=(cycle,) if cycle else (), chains=chains)
        if cycle:
            summary = "Deadlock: " + _detect.describe_cycle(cycle, report)
        else:
            summary = "Deadlock: " + "; ".join(_detect.describe_chain(chain, report) for chain in chains)
        self.reported_any.add(group)
        self._react(report.replace(summary=summary), steps, graph)

    def _react(self, report: Report, steps: tuple[CycleStep, ...], graph: _graph.LiveGraph) -> None:
        """Present a deadlock found through waits of any kind, then react as configured."""
        reaction = self.config.on_deadlock
        victim = None
        if reaction == "break":
            victim = self._lock_waiter_to_break(steps)
            if victim is None:
                report = report.replace(summary=report.summary + ". lockwatch cannot break it: no thread of it "
                                        "waits for a lock (a join or a future cannot be refused).")
            else:
                info = report.thread(victim[1].ident)
                report = report.replace(
                    victim=victim[1].ident,
                    summary=report.summary + f'. lockwatch broke it: thread "{info.name if info else victim[1].ident}" '
                    "gets DeadlockError.",
                )
        self.emit(report)
        if victim is not None:
            self._break(victim[0], victim[1], report)
        elif reaction == "exit":
            self._exit_process()
        elif callable(reaction):
            start_new_thread(_call_reaction, (reaction, report))

    def _lock_waiter_to_break(self, steps: tuple[CycleStep, ...]) -> tuple[WaitKey, _state.ThreadState] | None:
        """The thread of ``steps`` whose lock wait started last, as the lock path's victim key."""
        best = None
        for step in steps:
            state = _state.by_ident.get(step.thread)  # the newest state of that ident: the live thread
            lock = None if state is None else state.waiting_for
            if state is None or lock is None or state.wait_since is None:
                continue
            owner = lock._owner
            key = (state.token, lock._serial, state.wait_since, None if owner is None else owner.token)
            if best is None or key[2] > best[0][2]:
                best = (key, state)
        return best

    def _look_for_all_asleep(self, graph: _graph.LiveGraph) -> None:
        """Every live thread blocked in an untimed wait on two looks: the process is stuck."""
        if not graph.asleep or graph.awake:
            self.previous_asleep = None
            return
        episode = frozenset(graph.asleep.items())
        previous, self.previous_asleep = self.previous_asleep, episode
        if previous != episode or episode == self.asleep_reported:
            return
        if self.reported or self.reported_any or any(self.self_waits.values()):
            return  # a deadlock already said why they sleep
        self.asleep_reported = episode
        report = _snapshot.take("hang")
        handlers = _graph.program_signal_handlers()
        names = [f'"{info.name}"' for info in report.threads if info.id in graph.asleep]
        summary = (
            f"Every thread is asleep: {', '.join(names)} "
            f"{'is' if len(names) == 1 else 'are'} blocked in waits that nothing left running can end"
        )
        if handlers:
            summary += (f". The program handles {', '.join(handlers)} itself: it may be waiting for a signal, "
                        "so lockwatch only reports this")
        threads = tuple(
            dataclasses.replace(info, role="hung" if info.id in graph.asleep else info.role) for info in report.threads
        )
        report = report.replace(threads=threads, all_asleep=True, summary=summary)
        if handlers:
            self.emit(report)
            return
        self._react(report, (), graph)

    # --- hangs ------------------------------------------------------------------------

    def _find_hangs(self, now: float, current: dict[WaitKey, _state.ThreadState]) -> None:
        timeout = self.config.hang_timeout
        assert timeout is not None
        in_deadlock = set().union(*self.reported) if self.reported else set()
        hung: dict[int, tuple[Any, float, str]] = {}  # ident -> (episode, seconds, where)
        lock_waiters = set()
        for key, state in current.items():
            _token, serial, since, _owner = key
            ident = state.ident
            lock_waiters.add(ident)
            if key not in in_deadlock and now - since >= timeout:
                # One episode per wait, even if the lock changes hands while this thread waits.
                hung[ident] = (("lock", ident, serial, since), now - since, "a lock")
        # Condition waits (Event, Queue, Semaphore, Barrier...) are not lock waits:
        # time them from the first look that found the thread in that wait frame.
        frames = sys._current_frames()
        seen: dict[int, tuple[types.FrameType, float]] = {}
        for ident, frame in frames.items():
            if ident in lock_waiters or ident in _snapshot.internal_thread_idents:
                continue
            wait_frame = _untimed_condition_wait(frame)
            if wait_frame is None:
                continue
            earlier = self.condition_waits.get(ident)
            # The frame object itself is kept until the next look: its identity is the episode.
            first_seen = earlier[1] if earlier is not None and earlier[0] is wait_frame else now
            seen[ident] = (wait_frame, first_seen)
            if now - first_seen >= timeout:
                name = "Condition.wait_for" if _in_wait_for(wait_frame) else "Condition.wait"
                hung[ident] = (("condition", ident, id(wait_frame), first_seen), now - first_seen, name)
        del frames
        self.condition_waits = seen
        live_episodes = {episode for episode, _seconds, _where in hung.values()}
        new = {ident: info for ident, info in hung.items() if info[0] not in self.hangs_reported}
        self.hangs_reported &= live_episodes
        if new:
            self.hangs_reported |= {info[0] for info in new.values()}
            self._report_hang(new)

    def _report_hang(self, hung: dict[int, tuple[Any, float, str]]) -> None:
        report = _snapshot.take("hang")
        threads = []
        parts = []
        for info in report.threads:
            changes: dict[str, Any] = {}
            if info.id in hung:
                _episode, seconds, where = hung[info.id]
                changes["role"] = "hung"
                if info.waiting_for is None:
                    changes["waiting_seconds"] = round(seconds, 3)
                    changes["waiting_in"] = waiting_in = info.waiting_in or where
                    parts.append(f'thread "{info.name}" has been waiting in {waiting_in} for {seconds:.1f} s')
                else:
                    lock = report.lock(info.waiting_for)
                    title = lock.title if lock is not None else info.waiting_for
                    owner = report.thread(lock.owner) if lock is not None and lock.owner is not None else None
                    held = f' held by thread "{owner.name}"' if owner is not None else ""
                    parts.append(f'thread "{info.name}" has been waiting for lock "{title}"{held} for {seconds:.1f} s')
            threads.append(dataclasses.replace(info, **changes))
        if not parts:
            return  # the waits ended before the snapshot: nothing hangs any more
        summary = f"Hang (blocked longer than hang_timeout={self.config.hang_timeout} s): " + "; ".join(parts)
        self.emit(report.replace(threads=tuple(threads), summary=summary))

    # --- snapshots and output ---------------------------------------------------------

    def write_snapshot(self) -> None:
        report = _snapshot.take("snapshot", summary="Snapshot requested with SIGUSR1")
        waits = _detect.waits_in_report(report)
        cycles = tuple(_detect.find_cycles(waits))
        if cycles:
            report = report.replace(
                cycles=cycles,
                summary=report.summary + ". Deadlock: " + "; ".join(_detect.describe_cycle(c, report) for c in cycles),
            )
        paths = self.write(report)
        _events.publish(report, paths)
        if paths:
            try:
                _signals.write_last_snapshot(paths[0])
            except OSError as exc:
                _say_once("last-snapshot", f"cannot record the latest snapshot for `lockwatch dump`: {exc}")
        if _events.print_to_stderr and paths:
            # A person asked for it from outside: say where it is, without flooding the program's stderr.
            _print(f"lockwatch: snapshot written to {_dump.describe(paths)}\n")

    def write(self, report: Report) -> list[str]:
        """Write the dump files; an unwritable dump_dir is said once and yields no paths."""
        try:
            return list(_dump.write_report(report, self.dump_dir))
        except OSError as exc:
            _say_once(
                f"dump_dir:{self.dump_dir}",
                f"cannot write dumps to {self.dump_dir}: {exc}. Reports are printed to stderr only.",
            )
        except Exception as exc:  # noqa: BLE001  (the text report must still come out)
            _say_once("dump-error", f"writing a dump failed: {exc!r}. Reports are printed to stderr only.")
        return []

    def emit(self, report: Report) -> list[str]:
        """Write, publish and print a report, as every lockwatch finding is presented."""
        paths = self.write(report)
        _events.publish(report, paths)
        if _events.print_to_stderr:
            try:
                text = _text.format_report(report)
            except Exception as exc:  # noqa: BLE001  (the summary still says what matters)
                _say_once("text-error", f"formatting the report failed: {exc!r}")
                text = f"{report.kind.upper()}: {report.summary}\n"
            if paths:
                text += f"lockwatch: {report.kind} dump written to {_dump.describe(paths)}\n"
            _print(text)
        return paths


def _call_reaction(reaction: Callable[[Report], Any], report: Report) -> None:
    _state.internal_thread_idents.add(get_ident())
    try:
        reaction(report)
    except Exception as exc:  # noqa: BLE001  (the user's callable must not end lockwatch)
        _say_once(
            f"callback:{id(reaction)}",
            f"the on_deadlock callable {getattr(reaction, '__name__', reaction)!r} raised "
            f"{exc!r}; lockwatch carries on (said once)",
        )
    finally:
        _state.internal_thread_idents.discard(get_ident())


def _print(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except Exception:  # noqa: BLE001  (stderr closed or broken: nothing sensible left to do)
        pass


def _untimed_condition_wait(frame: types.FrameType | None) -> types.FrameType | None:
    """The Condition.wait frame a thread is blocked in without a timeout, if any."""
    depth = 0
    while frame is not None and depth < 8:
        if frame.f_code is _CONDITION_WAIT_CODE:
            if _UNTIMED_WAIT_LINES is None or frame.f_lineno in _UNTIMED_WAIT_LINES:
                return frame
            return None
        frame = frame.f_back
        depth += 1
    return None


def _in_wait_for(frame: types.FrameType) -> bool:
    outer = frame.f_back
    return outer is not None and outer.f_code is _CONDITION_WAIT_FOR_CODE


# --- the one watchdog of this process --------------------------------------------------

_control = _allocate_raw_lock()  # serialises activate/deactivate (replaced after fork)
_starting = _allocate_raw_lock()  # only ever try-acquired: one lazy start at a time
_config: Config | None = None  # the configuration in force while patched in
_watchdog: _Watchdog | None = None
_atexit_registered = False


def activate(config: Config) -> None:
    """Apply ``config``: the watchdog starts when first needed (or now, with a hang_timeout)."""
    global _config, _atexit_registered
    with _control:
        _config = config
        watchdog = _watchdog
        if watchdog is not None and not watchdog.stopping:
            old_dir = watchdog.dump_dir
            watchdog.config = config
            watchdog.dump_dir = os.path.abspath(config.dump_dir)
            if old_dir != watchdog.dump_dir and _signals.is_registered():
                _register(watchdog.dump_dir)
            watchdog.wake_up()  # a shorter interval takes effect now
        _state.notify_watchdog = _notify
        _state.ensure_watchdog = _ensure_running
        if not _atexit_registered:
            atexit.register(_at_exit)
            _atexit_registered = True
        _apply_signal_setting(config)
    if config.hang_timeout is not None:
        _notify()  # hangs in Condition waits are found by looking: no wait of ours announces them


def _notify() -> None:
    """Wake the watchdog, starting it first if needed. Safe mid-acquire: never waits."""
    watchdog = _watchdog
    if watchdog is not None and not watchdog.stopping:
        watchdog.wake_up()
        return
    if not _starting.acquire(False):
        return  # another thread is starting it right now
    try:
        _start_now()
    finally:
        _starting.release()


def _ensure_running() -> None:
    """Start the watchdog if it is not running; a running one is left to its next look."""
    watchdog = _watchdog
    if watchdog is None or watchdog.stopping:
        _notify()


def _start_now() -> None:
    global _watchdog
    config = _config
    watchdog = _watchdog
    if config is None or (watchdog is not None and not watchdog.stopping):
        return
    watchdog = _Watchdog(config)
    _watchdog = watchdog
    watchdog.start()


def flush(timeout: float = 5.0) -> bool:
    """Wait until findings handed over so far are presented (not from a user's acquire); whether they were."""
    if get_ident() == watchdog_ident():
        return False
    if _state.findings:
        _notify()
    deadline = monotonic() + timeout
    while monotonic() < deadline:
        watchdog = _watchdog
        if not _state.findings and (watchdog is None or not watchdog.busy):
            return True
        if watchdog is None or watchdog.stopping:
            return False
        sleep(0.002)
    return False


def _apply_signal_setting(config: Config) -> None:
    if config.signal:
        if _signals.install_handler(_request_snapshot) and not _signals.is_registered():
            _register(os.path.abspath(config.dump_dir))
    else:
        _signals.uninstall_handler()
        _signals.unregister()


def _register(dump_dir: str) -> None:
    try:
        _signals.register(dump_dir)
    except OSError as exc:
        _say_once("register", f"cannot register for `lockwatch dump` in {_signals.registry_dir()}: {exc}")


def _request_snapshot() -> None:
    _notify()
    watchdog = _watchdog
    if watchdog is not None and not watchdog.stopping:
        watchdog.request_snapshot()


def deactivate() -> None:
    """Stop the watchdog thread (waiting briefly for it), restore SIGUSR1, remove the registration."""
    global _watchdog, _config
    flush(1.0)
    with _control:
        watchdog = _watchdog
        _watchdog = None
        _config = None
        _state.notify_watchdog = _state.nobody_to_notify
        _state.ensure_watchdog = _state.nobody_to_notify
    if watchdog is not None:
        watchdog.stop()
    _signals.uninstall_handler()
    _signals.unregister()


def is_running() -> bool:
    """Whether a watchdog thread is running in this process."""
    watchdog = _watchdog
    return watchdog is not None and not watchdog.stopping


def watchdog_ident() -> int | None:
    """The thread id of the running watchdog, if any."""
    watchdog = _watchdog
    return None if watchdog is None else watchdog.ident


def _at_exit() -> None:
    # atexit runs after threading has joined the non-daemon threads, so the
    # watchdog kept watching them until now; present what is pending, then stop
    # it before the interpreter freezes daemon threads.
    flush(1.0)
    unmatched = _order.unmatched_declared_names() if _order._policy != "off" else []
    if unmatched:
        names = ", ".join(f'"{name}"' for name in unmatched)
        _say_once("declared-unmatched", f"declared_order names {names}, but no lock was ever called that "
                  "(by name=, or by an attribute or global holding it, like Account.lock)")
    watchdog = _watchdog
    if watchdog is not None:
        watchdog.stop(timeout=1.0)
    _dump.wait_drawings(EXIT_DRAWING_TIMEOUT)
    _signals.unregister()


def _after_fork_in_child() -> None:
    """The parent's watchdog thread does not exist here: a fresh one starts when first needed."""
    global _control, _starting, _watchdog
    _control = _allocate_raw_lock()
    _starting = _allocate_raw_lock()
    old = _watchdog
    _watchdog = None
    _signals.forget_registration()
    if old is not None and old.ident is not None:
        _state.internal_thread_idents.discard(old.ident)
    if _config is not None and _signals.handler_installed():
        _register(os.path.abspath(_config.dump_dir))


_state.on_fork_child(_after_fork_in_child)
