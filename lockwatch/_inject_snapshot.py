"""The snapshot routine `lockwatch dump --attach` runs inside a live Python process: stacks and lock states, as JSON.

This file is not imported by lockwatch: its source is executed in the target
process (``exec`` with its own globals, from a thread gdb borrowed, holding the
GIL) and it writes its findings to the file named by ``LOCKWATCH_OUT``. The
tests also run it in-process through :func:`collect`.

It runs in a process that is stuck, among threads frozen in the middle of
whatever they hold, so it keeps to strict rules:

- It imports nothing new. ``import sys`` finds the module already loaded (no
  import lock is taken); everything else comes from ``sys.modules`` or not at
  all. No logging, no printing, no ``json`` (a small serializer below).
- It runs no user code: no ``getattr`` (properties, ``__getattr__``), no
  ``repr``/``==``/``hash`` of user objects. Attributes are read from instance
  and class ``__dict__``s through the C descriptors, subscripts only on exact
  ``dict``/``list``/``tuple`` with literal keys.
- It never raises: any failure becomes an ``"error"`` entry in the output.

What it reports per thread: its stack, and for each frame the lock
expressions of the ``with``/``.acquire(``/``.__enter__(`` lines of that
function up to the current line, evaluated in the frame. Which of them are
still active (held) or being acquired is worked out by lockwatch afterwards,
with the real ``ast``, outside the target. Per lock object: its kind and state
(a C ``RLock``'s owner and count from its C ``repr``, which is exact; a
``Lock``'s locked flag).
"""

# Every broad `except` here is on purpose: nothing may escape into the target process.
# ruff: noqa: BLE001
# mypy: ignore-errors
# (it runs in the target, on Python 3.10-3.13, and is written for that, not for a type checker)

import sys

# Bounds: a snapshot of a huge process stays small and quick.
_MAX_FRAMES = 80
_MAX_LINES = 3000
_MAX_CANDIDATES = 200
_MAX_FILE = 4_000_000

_TYPE_DICT = type.__dict__["__dict__"]  # cls -> its own namespace (mappingproxy), in C
_TYPE_MRO = type.__dict__["__mro__"]
_TYPE_NAME = type.__dict__["__name__"]
_GETSET = type(_TYPE_DICT)
_MEMBER = type(type.__dict__["__basicsize__"])
_MODULE = type(sys)


def _class_namespaces(cls):
    return [_TYPE_DICT.__get__(klass) for klass in _TYPE_MRO.__get__(cls)]


def _class_lookup(cls, name):
    """(found, value) for ``name`` in the class's MRO namespaces, without binding anything."""
    for namespace in _class_namespaces(cls):
        if name in namespace:
            return True, namespace[name]
    return False, None


def _is_data_descriptor(value):
    for namespace in _class_namespaces(type(value)):
        if "__set__" in namespace or "__delete__" in namespace:
            return True
    return False


def _instance_dict(obj):
    """The instance's ``__dict__`` through the C descriptor, or None (a user-made ``__dict__`` is never called)."""
    found, descriptor = _class_lookup(type(obj), "__dict__")
    if not found or type(descriptor) not in (_GETSET, _MEMBER):
        return None
    try:
        namespace = descriptor.__get__(obj, type(obj))
    except Exception:
        return None
    return namespace if type(namespace) is dict else None


def _type_name(obj):
    try:
        return _TYPE_NAME.__get__(type(obj))
    except Exception:
        return "?"


def _attribute(obj, name):
    """(True, value) for ``obj.name`` read without running user code, else (False, reason)."""
    if isinstance(obj, type):
        found, value = _class_lookup(obj, name)
        return (True, value) if found else (False, "no class attribute " + name)
    if type(obj) is _MODULE:
        namespace = _instance_dict(obj)
        if namespace is not None and name in namespace:
            return True, namespace[name]
        return False, "no module attribute " + name
    found, class_value = _class_lookup(type(obj), name)
    if found and _is_data_descriptor(class_value):
        if type(class_value) is _MEMBER:  # a __slots__ entry: read by C
            try:
                return True, class_value.__get__(obj, type(obj))
            except Exception:
                return False, "empty slot " + name
        return False, name + " is a property or descriptor (not evaluated)"
    namespace = _instance_dict(obj)
    if namespace is not None and name in namespace:
        return True, namespace[name]
    if found:
        if any("__get__" in namespace for namespace in _class_namespaces(type(class_value))):
            return False, name + " is a method or descriptor (not evaluated)"
        return True, class_value
    return False, "no attribute " + name


def _subscript(container, key):
    kind = type(container)
    if kind is dict:
        if type(key) in (str, int) and key in container:
            return True, container[key]
        return False, "no key"
    if kind in (list, tuple) and type(key) is int:
        if -len(container) <= key < len(container):
            return True, container[key]
        return False, "index out of range"
    return False, "subscript of a " + _type_name(container) + " (not evaluated)"


def _split_expression(text):
    """``self.locks['db'].inner`` -> ['self', ('.', 'locks'), ('[]', 'db'), ('.', 'inner')], or None."""
    text = text.strip()
    index = 0
    parts = []

    def name_at(position):
        end = position
        while end < len(text) and (text[end].isalnum() or text[end] == "_"):
            end += 1
        word = text[position:end]
        return (word, end) if word and word.isidentifier() else (None, position)

    root, index = name_at(0)
    if root is None:
        return None
    parts.append(root)
    while index < len(text):
        char = text[index]
        if char == ".":
            word, index = name_at(index + 1)
            if word is None:
                return None
            parts.append((".", word))
        elif char == "[":
            close = text.find("]", index)
            if close < 0:
                return None
            literal = text[index + 1:close].strip()
            if len(literal) >= 2 and literal[0] == literal[-1] and literal[0] in "'\"" and literal[0] not in literal[1:-1]:
                key = literal[1:-1]
            elif literal.lstrip("-").isdigit():
                key = int(literal)
            elif literal.isidentifier():  # locks[name]: the name's value, if it is a str or int
                parts.append(("[name]", literal))
                index = close + 1
                continue
            else:
                return None
            parts.append(("[]", key))
            index = close + 1
        else:
            return None
    return parts


def _evaluate(frame, parts, frame_locals):
    """(True, value, label) or (False, reason, None) for a split expression in ``frame``."""
    root = parts[0]
    module_name = None
    globals_ = frame.f_globals
    if frame_locals is not None and frame_locals is not globals_ and root in frame_locals:
        value = frame_locals[root]
    elif root in globals_:
        value = globals_[root]
        module_name = globals_.get("__name__")
        if type(module_name) is not str:
            module_name = None
    else:
        builtins = frame.f_builtins
        if type(builtins) is dict and root in builtins:
            value = builtins[root]
        else:
            return False, "name " + root + " not found", None
    values = [value]
    parts = list(parts)
    for index in range(1, len(parts)):
        kind, key = parts[index]
        if kind == "[name]":
            if frame_locals is not None and key in frame_locals:
                key = frame_locals[key]
            elif key in globals_:
                key = globals_[key]
            else:
                return False, "name " + parts[index][1] + " not found", None
            if type(key) not in (str, int):
                return False, "subscript by a " + _type_name(key) + " (not evaluated)", None
            kind = "[]"
            parts[index] = (kind, key)
        if kind == ".":
            ok, value = _attribute(value, key)
        else:
            ok, value = _subscript(value, key)
        if not ok:
            return False, value, None
        values.append(value)
    # A label like the ones lockwatch gives instrumented locks: Account.lock, app.LOCKS['db'].
    last_attribute = 0
    for index in range(1, len(parts)):
        if parts[index][0] == ".":
            last_attribute = index
    if last_attribute == 0:
        label = (module_name + "." if module_name else "") + root + _text(parts[1:])
    else:
        base = values[last_attribute - 1]
        tail = _text(parts[last_attribute:])
        if type(base) is _MODULE:
            name = (_instance_dict(base) or {}).get("__name__")
            label = (name if type(name) is str else root) + tail
        elif isinstance(base, type):
            label = _TYPE_NAME.__get__(base) + tail
        else:
            label = _type_name(base) + tail
    return True, value, label


def _text(parts):
    return "".join("." + key if kind == "." else "[" + _literal(key) + "]" for kind, key in parts)


def _literal(key):
    return "'" + key + "'" if type(key) is str else str(key)


# --- the lines that take locks ----------------------------------------------------------------


def _with_items(line):
    """The context expressions of a one-line ``with a, b as c:`` header (after stripping comments)."""
    text = line.split("#", 1)[0].strip()
    for prefix in ("async with ", "with "):
        if text.startswith(prefix):
            body = text[len(prefix):].rstrip()
            if body.endswith(":"):
                body = body[:-1]
            if body.startswith("(") and body.endswith(")"):
                body = body[1:-1]
            items = []
            depth = 0
            current = ""
            for char in body:
                if char in "([{":
                    depth += 1
                elif char in ")]}":
                    depth -= 1
                if char == "," and depth == 0:
                    items.append(current)
                    current = ""
                else:
                    current += char
            items.append(current)
            return [item.split(" as ", 1)[0].strip() for item in items if item.strip()]
    return []


def _call_targets(line, method):
    """``x.lock`` for each ``x.lock.<method>(`` on the line."""
    text = line.split("#", 1)[0]
    found = []
    needle = "." + method + "("
    start = 0
    while True:
        index = text.find(needle, start)
        if index < 0:
            return found
        begin = index
        depth = 0
        while begin > 0:
            char = text[begin - 1]
            if char == "]":
                depth += 1
            elif char == "[":
                if depth == 0:
                    break
                depth -= 1
            elif not (char.isalnum() or char in "_.'\"" or depth > 0):
                break
            begin -= 1
        expression = text[begin:index]
        if expression:
            found.append(expression)
        start = index + len(needle)


def _lock_lines(lines, first, last):
    """(line number, expression, how) for each with/acquire/__enter__ in lines first..last."""
    found = []
    for number in range(max(first, 1), min(last, len(lines)) + 1):
        line = lines[number - 1]
        if "with" in line:
            for expression in _with_items(line):
                found.append((number, expression, "with"))
        for method, how in (("acquire", "acquire"), ("__enter__", "enter"), ("release", "release")):
            if "." + method + "(" in line:
                for expression in _call_targets(line, method):
                    found.append((number, expression, how))
        if len(found) > _MAX_CANDIDATES:
            break
    return found


class _Sources:
    """Source lines per file, read once (never through linecache: it may not be loaded)."""

    def __init__(self):
        self.files = {}

    def lines(self, path):
        if path in self.files:
            return self.files[path]
        lines = []
        if path and not path.startswith("<"):
            try:
                with open(path, "rb") as handle:
                    data = handle.read(_MAX_FILE)
                lines = data.decode("utf-8", "replace").splitlines()
            except Exception:
                lines = []
        self.files[path] = lines
        return lines


# --- locks -----------------------------------------------------------------------------------


class _Kinds:
    """The lock types of this process, found in modules it already imported."""

    def __init__(self):
        thread_module = sys.modules.get("_thread")
        namespace = _instance_dict(thread_module) if thread_module is not None else None
        namespace = namespace or {}
        self.lock = namespace.get("LockType")
        self.rlock = namespace.get("RLock")
        threading = sys.modules.get("threading")
        threading_namespace = (_instance_dict(threading) if threading is not None else None) or {}
        self.py_rlock = threading_namespace.get("_PyRLock")
        self.condition = threading_namespace.get("Condition")
        self.threading_file = threading_namespace.get("__file__")


def _describe(obj, kinds):
    """What a lock-like object is and its state; None for anything else."""
    kind = type(obj)
    if kinds.lock is not None and kind is kinds.lock:
        try:
            locked = bool(kinds.lock.locked(obj))
        except Exception:
            locked = None
        return {"kind": "Lock", "impl": "_thread.lock", "locked": locked, "owner": None, "count": 1 if locked else 0}
    if kinds.rlock is not None and kind is kinds.rlock:
        # The C RLock records its owner; its C repr is the one place Python shows it:
        # <locked _thread.RLock object owner=140245 count=2 at 0x7f...>
        try:
            text = kinds.rlock.__repr__(obj)
            owner = int(text.split("owner=", 1)[1].split()[0])
            count = int(text.split("count=", 1)[1].split()[0])
        except Exception:
            return {"kind": "RLock", "impl": "_thread.RLock", "locked": None, "owner": None, "count": 0}
        return {"kind": "RLock", "impl": "_thread.RLock", "locked": count > 0,
                "owner": owner if count > 0 else None, "count": count, "exact": True}
    if kinds.py_rlock is not None and kind is kinds.py_rlock:
        namespace = _instance_dict(obj) or {}
        owner = namespace.get("_owner")
        count = namespace.get("_count")
        count = count if type(count) is int else 0
        return {"kind": "RLock", "impl": "threading._PyRLock", "locked": count > 0,
                "owner": owner if type(owner) is int and count > 0 else None, "count": count, "exact": True}
    if kinds.condition is not None and kind is kinds.condition:
        namespace = _instance_dict(obj) or {}
        inner = namespace.get("_lock")
        return {"kind": "Condition", "inner": id(inner) if inner is not None else None}
    return None


# --- the snapshot ----------------------------------------------------------------------------


def collect(native=None, skip_ident=None, skip_files=()):
    """Every thread's stack and the locks its frames take, as plain data (see the module docstring).

    ``native`` maps thread idents to the address of the lock object a C-level
    ``acquire`` is blocked on (read by gdb); those objects are looked up too.
    Frames of ``skip_files`` (this routine when injected) are left out.
    """
    native = native or {}
    kinds = _Kinds()
    sources = _Sources()
    objects = {}
    wanted = {}  # address -> [(ident, frame index)] of objects to find by address

    def note(obj):
        key = id(obj)
        if key not in objects:
            description = _describe(obj, kinds)
            if description is None:
                return None
            description["type"] = _type_name(obj)
            objects[key] = description
            if description.get("kind") == "Condition" and description.get("inner") is not None:
                inner_namespace = _instance_dict(obj) or {}
                note(inner_namespace.get("_lock"))
        return key

    threads_module = sys.modules.get("threading")
    threading_namespace = (_instance_dict(threads_module) if threads_module is not None else None) or {}
    active = threading_namespace.get("_active")
    known = dict(active) if type(active) is dict else {}

    frames = sys._current_frames()
    result_threads = []
    for ident, top in list(frames.items()):
        stack = []
        frame = top
        depth = 0
        while frame is not None and depth < _MAX_FRAMES:
            stack.append(frame)
            frame = frame.f_back
            depth += 1
        stack.reverse()  # outermost first
        if ident == skip_ident:
            while stack and stack[-1].f_code.co_filename in skip_files:
                stack.pop()
        entries = []
        for frame in stack:
            code = frame.f_code
            path = code.co_filename
            line = frame.f_lineno or 0
            lines = sources.lines(path)
            entry = {"file": path, "line": line, "function": code.co_name, "first_line": code.co_firstlineno,
                     "code": lines[line - 1].strip() if 0 < line <= len(lines) else None, "locks": []}
            if lines and line:
                try:
                    frame_locals = frame.f_locals
                except Exception:
                    frame_locals = None
                seen = {}
                for number, expression, how in _lock_lines(lines, code.co_firstlineno, line):
                    item = {"line": number, "expr": expression, "how": how}
                    if expression not in seen:
                        parts = _split_expression(expression)
                        if parts is None:
                            seen[expression] = (None, "not a plain name/attribute/subscript", None)
                        else:
                            try:
                                ok, value, label = _evaluate(frame, parts, frame_locals)
                            except Exception as exc:
                                ok, value, label = False, "error: " + _type_name(exc), None
                            if ok:
                                key = note(value)
                                seen[expression] = (key, None if key is not None else
                                                    "not a lock (" + _type_name(value) + ")", label)
                            else:
                                seen[expression] = (None, value, None)
                    key, why, label = seen[expression]
                    if key is not None:
                        item["object"] = key
                        item["label"] = label
                    else:
                        item["why"] = why
                    entry["locks"].append(item)
            entries.append(entry)
        thread = known.get(ident)
        namespace = _instance_dict(thread) if thread is not None else None
        name = namespace.get("_name") if namespace else None
        daemon = namespace.get("_daemonic") if namespace else None
        result_threads.append({
            "id": ident,
            "name": name if type(name) is str else None,
            "daemon": bool(daemon) if type(daemon) is bool else False,
            "stack": entries,
        })
        address = native.get(ident)
        if address:
            wanted.setdefault(address, []).append(ident)

    # C-level acquires blocked on an object gdb read: find the object among what frames reach.
    found = {}
    if wanted:
        for top in frames.values():
            frame = top
            while frame is not None and len(found) < len(wanted):
                _search(frame, wanted, found)
                frame = frame.f_back
    for obj, _label in found.values():
        note(obj)
    for entry in result_threads:
        address = native.get(entry["id"])
        if address:
            entry["native_lock"] = address
            if address in found:
                entry["native_label"] = found[address][1]

    return {
        "pid": _getpid(),
        "python": ".".join(str(part) for part in sys.version_info[:3]),
        "argv": [str(arg) for arg in sys.argv] if type(getattr(sys, "argv", None)) is list else [],
        "executable": sys.executable,
        "injector": skip_ident,
        "threading_file": kinds.threading_file if type(kinds.threading_file) is str else None,
        "threads": result_threads,
        "objects": {str(key): value for key, value in objects.items()},
    }


def _search(frame, wanted, found):
    """Look for objects by address in a frame's locals and one level into them (dicts, lists, instances)."""
    try:
        frame_locals = frame.f_locals
    except Exception:
        return
    spaces = []
    if type(frame_locals) is dict:
        spaces.append(("", frame_locals))
    else:
        try:
            spaces.append(("", dict(frame_locals)))
        except Exception:
            pass
    globals_ = frame.f_globals
    module_name = globals_.get("__name__") if type(globals_) is dict else None
    if type(globals_) is dict:
        spaces.append(((module_name + ".") if type(module_name) is str else "", globals_))
    for prefix, space in spaces:
        for name, value in list(space.items()):
            if type(name) is not str:
                continue
            if id(value) in wanted and id(value) not in found:
                found[id(value)] = (value, prefix + name if prefix else name)
                continue
            inner = _instance_dict(value) if not isinstance(value, (type, _MODULE)) else None
            owner = _type_name(value)
            if inner is not None:
                for key, item in list(inner.items()):
                    if id(item) in wanted and id(item) not in found and type(key) is str:
                        found[id(item)] = (item, owner + "." + key)
            elif type(value) is dict:
                for key, item in list(value.items()):
                    if id(item) in wanted and id(item) not in found and type(key) in (str, int):
                        found[id(item)] = (item, (prefix + name if prefix else name) + "[" + _literal(key) + "]")
            elif type(value) in (list, tuple):
                for index, item in enumerate(value):
                    if id(item) in wanted and id(item) not in found:
                        found[id(item)] = (item, (prefix + name if prefix else name) + "[" + str(index) + "]")


def _getpid():
    os_module = sys.modules.get("posix") or sys.modules.get("nt") or sys.modules.get("os")
    namespace = _instance_dict(os_module) if os_module is not None else None
    getpid = namespace.get("getpid") if namespace else None
    try:
        return getpid() if getpid is not None else None
    except Exception:
        return None


# --- output ----------------------------------------------------------------------------------


def to_json(value):
    """A small JSON writer for the plain data above (``json`` may not be loaded in the target)."""
    kind = type(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return repr(value)
    if kind is str:
        out = ['"']
        for char in value:
            code = ord(char)
            if char == '"':
                out.append('\\"')
            elif char == "\\":
                out.append("\\\\")
            elif code < 0x20:
                out.append(f"\\u{code:04x}")
            elif 0xD800 <= code <= 0xDFFF:  # lone surrogates (surrogateescape'd file names)
                out.append("\\ufffd")
            else:
                out.append(char)
        out.append('"')
        return "".join(out)
    if kind in (list, tuple):
        return "[" + ",".join(to_json(item) for item in value) + "]"
    if kind is dict:
        return "{" + ",".join(to_json(str(key)) + ":" + to_json(item) for key, item in value.items()) + "}"
    return to_json(str(value))


def write(path, native=None, skip_ident=None, skip_files=()):
    """Collect and write the snapshot to ``path`` (UTF-8 JSON); on failure write the error instead."""
    try:
        data = collect(native, skip_ident, skip_files)
    except BaseException as exc:  # the target must never see an exception from us
        data = {"error": _type_name(exc) + ": " + str(exc.args[:1])}
    text = to_json(data)
    with open(path, "wb") as handle:
        handle.write(text.encode("utf-8", "replace"))


def _main():
    namespace = globals()
    thread_module = sys.modules.get("_thread")
    get_ident = (_instance_dict(thread_module) or {}).get("get_ident") if thread_module is not None else None
    me = get_ident() if get_ident is not None else None
    own = namespace.get("__file__")
    write(namespace["LOCKWATCH_OUT"], namespace.get("LOCKWATCH_NATIVE"), me, (own, "<string>"))


if __name__ == "__lockwatch_snapshot__":
    try:
        _main()
    except BaseException:  # never let anything escape into the target
        pass
