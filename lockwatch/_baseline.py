"""Lock-order baselines: the accepted orders (by lock creation site) that later runs are checked against."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from lockwatch._errors import ConfigError

#: Version of the baseline file format (``"lockwatch_baseline": 1``).
BASELINE_FORMAT_VERSION = 1

# (file, line) of a lock's creation: what a baseline edge connects.
Site = tuple[str, int]

_site_cache: dict[str, str] = {}


def _project_root() -> str:
    from lockwatch._config import find_pyproject

    found = find_pyproject()
    return str(found.parent) if found is not None else os.getcwd()


def site_key(site: Site | None) -> str | None:
    """``pkg/mod.py:12``: a creation site relative to the project root (or sys.path), stable across runs."""
    if site is None:
        return None
    filename, line = site
    relative = _site_cache.get(filename)
    if relative is None:
        relative = _site_cache[filename] = _relative_file(filename)
    return f"{relative}:{line}"


def _relative_file(filename: str) -> str:
    if filename.startswith("<"):
        return filename  # <stdin>, <string>: nothing better to say
    path = os.path.abspath(filename)
    # The project first, then the longest import root (site-packages, the stdlib).
    roots = [_project_root()] + sorted(
        (os.path.abspath(entry) for entry in sys.path if entry), key=len, reverse=True
    )
    for root in roots:
        try:
            relative = os.path.relpath(path, root)
        except ValueError:  # another drive on Windows
            continue
        if not relative.startswith(os.pardir):
            return relative.replace(os.sep, "/")
    return path.replace(os.sep, "/")


@dataclass(frozen=True)
class Baseline:
    """Accepted lock orders and suppressed ones (each with the reason it is accepted)."""

    path: str
    edges: frozenset[tuple[str, str]] = frozenset()
    suppressions: dict[tuple[str, str], str] = field(default_factory=dict)
    raw_suppressions: tuple[dict[str, Any], ...] = ()
    # Orders between two locks created by one line, told apart by their names: (site, site, name, name).
    named: frozenset[tuple[str, str, str, str]] = frozenset()

    def knows(
        self, from_site: Site | None, to_site: Site | None, from_name: str | None = None, to_name: str | None = None
    ) -> bool:
        """Whether this order was recorded in the baseline (or is suppressed).

        Two locks created by the same line (``{n: Lock() for n in names}``) share a
        site: only their names tell ``db -> cache`` from ``cache -> db``, so such an
        order is known only by the names it was recorded with. Unnamed ones are
        never accepted by an edge (a suppression accepts them all, with a reason).
        """
        key = (site_key(from_site), site_key(to_site))
        if key in self.suppressions:
            return True
        if key[0] == key[1]:
            return (
                from_name is not None and to_name is not None
                and (key[0], key[1], from_name, to_name) in self.named
            )
        return key in self.edges

    def suppresses(self, from_site: Site | None, to_site: Site | None) -> bool:
        """Whether this order is suppressed: it never takes part in a report."""
        if not self.suppressions:
            return False
        return (site_key(from_site), site_key(to_site)) in self.suppressions


def load_baseline(path: str | os.PathLike[str]) -> Baseline:
    """Read a baseline file; a ConfigError says what is wrong with it."""
    path = os.fspath(path)
    where = f"lock-order baseline {path}"
    try:
        with open(path, "rb") as handle:
            content = handle.read()
    except FileNotFoundError:
        raise ConfigError(
            f"{where} does not exist (write one with lockwatch.write_baseline({path!r}) after a run)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read: {exc.strerror or exc}") from None
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where} is not a lockwatch baseline (not UTF-8 text: bad byte at offset {exc.start})") from None
    if not text.strip():
        what = "the file is empty" if not content else "the file holds only white space"
        raise ConfigError(f"{where} is not a lockwatch baseline ({what})")
    try:
        data = json.loads(text)
    except RecursionError:
        raise ConfigError(f"{where} is not a lockwatch baseline (JSON nested too deeply)") from None
    except ValueError as exc:
        raise ConfigError(f"{where} is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("lockwatch_baseline") is None:
        raise ConfigError(f'{where} is not a lockwatch baseline (no "lockwatch_baseline" version key)')
    version = data["lockwatch_baseline"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError(f"{where}: unknown format version {version!r}")
    if version > BASELINE_FORMAT_VERSION:
        raise ConfigError(
            f"{where}: format version {version} is newer than this lockwatch understands "
            f"({BASELINE_FORMAT_VERSION}); upgrade lockwatch"
        )
    edges = set()
    named = set()
    for index, entry in enumerate(_list(data, "edges", where)):
        pair = _pair(entry, f"{where}: edges[{index}]")
        if pair[0] != pair[1]:
            edges.add(pair)
            continue
        names = entry.get("from_name"), entry.get("to_name")
        if all(isinstance(name, str) and name for name in names):
            named.add((*pair, *names))
    suppressions: dict[tuple[str, str], str] = {}
    raw = []
    for index, entry in enumerate(_list(data, "suppressions", where)):
        what = f"{where}: suppressions[{index}]"
        pair = _pair(entry, what)
        reason = entry.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f'{what} ({pair[0]} -> {pair[1]}) needs a "reason": say why this order is accepted')
        suppressions[pair] = reason
        raw.append(dict(entry))
    return Baseline(
        path=path, edges=frozenset(edges), suppressions=suppressions, raw_suppressions=tuple(raw), named=frozenset(named)
    )


def _list(data: dict[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f'{where}: "{key}" must be a list, not {type(value).__name__}')
    return value


def _pair(entry: Any, what: str) -> tuple[str, str]:
    if not isinstance(entry, dict):
        raise ConfigError(f"{what} must be an object with \"from\" and \"to\", not {type(entry).__name__}")
    ends = entry.get("from"), entry.get("to")
    if not all(isinstance(end, str) and end for end in ends):
        raise ConfigError(f'{what} needs "from" and "to" sites like "pkg/mod.py:12"')
    return ends  # type: ignore[return-value]


def write_baseline(path: str | os.PathLike[str]) -> str:
    """Write the lock orders learned so far (by creation site) as a baseline; keeps existing suppressions.

    Returns the path written. Raises ConfigError if an existing file at ``path``
    is not a valid baseline (its suppressions would be lost), OSError if it
    cannot be written.
    """
    from lockwatch import _order

    path = os.fspath(path)
    suppressions: tuple[dict[str, Any], ...] = ()
    if os.path.exists(path):
        suppressions = load_baseline(path).raw_suppressions
    edges: dict[tuple[str, ...], dict[str, Any]] = {}
    for order in _order.class_orders():
        from_key, to_key = site_key(order.from_site), site_key(order.to_site)
        if from_key is None or to_key is None:
            continue
        entry: dict[str, Any] = {
            "from": from_key,
            "to": to_key,
            "from_label": order.from_label,
            "to_label": order.to_label,
            "thread": order.thread,
            "test": order.test,
        }
        if from_key == to_key:
            # One creation site: only names tell the two locks apart (see Baseline.knows);
            # an order between unnamed locks of one line is not something a baseline can accept.
            if not (order.from_name and order.to_name):
                continue
            entry["from_name"], entry["to_name"] = order.from_name, order.to_name
        key = (from_key, to_key, entry.get("from_name", ""), entry.get("to_name", ""))
        edges.setdefault(key, entry)
    document = {
        "lockwatch_baseline": BASELINE_FORMAT_VERSION,
        "edges": [edges[key] for key in sorted(edges, key=lambda key: (*_site_sort_key((key[0], key[1])), *key[2:]))],
        "suppressions": sorted(suppressions, key=lambda s: _site_sort_key((s["from"], s["to"]))),
    }
    text = json.dumps(document, indent=2, sort_keys=False) + "\n"
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)  # never leave a half-written baseline behind
    return path


def _site_sort_key(pair: tuple[str, str]) -> tuple[Any, ...]:
    """Sort ``file:line`` sites by file, then line as a number."""

    def split(site: str) -> tuple[str, int]:
        name, _, line = site.rpartition(":")
        return (name, int(line)) if line.isdigit() else (site, 0)

    return (*split(pair[0]), *split(pair[1]))
