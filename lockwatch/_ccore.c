/* lockwatch._ccore: the C hot paths of Lock and RLock (the optional accelerator of the pure-Python core).
 *
 * Model: coverage.py's CTracer beside its PyTracer. This module implements only
 * the uncontended acquire whose lock order is already known, and the owner's
 * own release, on the very state the Python code reads and writes:
 *
 *   - the instance fields (_real, _owner, _cls, _serial, _parked, RLock's _count)
 *     are C members, visible to Python under those names;
 *   - the per-thread ThreadState objects, their held lists and held contexts
 *     (lockwatch/_state.py) are read and written through their __slots__.
 *
 * Every other path (blocking, timeouts, a new lock order, hand-off locks,
 * warnings, break mode, errors) is a call into the one Python definition of it
 * in lockwatch/_locks.py. The real lock stays a _thread.lock (so locked(),
 * _at_fork_reinit and Condition keep working); see RawLock for how it is taken.
 * All of this runs with the GIL held; the module
 * refuses to load on a free-threaded build (the Python core is used there).
 *
 * No window: the try-acquire of the real lock and the owner store run without
 * any Python code in between, so an asynchronous exception cannot land between
 * them (it can only land before the try, or in a Python slow path that gives
 * the lock back itself).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h> /* offsetof */
#if PY_VERSION_HEX < 0x030B0000
#include <frameobject.h> /* PyFrame_GetBack (Python.h declares it from 3.11) */
#endif

#if PY_VERSION_HEX < 0x030C0000
#include <structmember.h>
#define Py_T_OBJECT_EX T_OBJECT_EX
#define Py_T_PYSSIZET T_PYSSIZET
#define Py_READONLY READONLY
#endif

#ifdef Py_GIL_DISABLED
/* Built for a free-threaded interpreter: this code relies on the GIL for every
 * field it touches, so the module only says why it cannot be used. */
#define LOCKWATCH_NO_GIL 1
#endif

/* --- configuration, given once by lockwatch/_locks.py (configure()) ----------------- */

/* Where a __slots__ field of a Python class lives in its instances. */
typedef struct {
    PyTypeObject *type;       /* the exact class whose layout the offsets describe */
    Py_ssize_t offset;
    PyObject *name;           /* the attribute name (the generic path for other types) */
} Field;

static Field F_held, F_ctx;                        /* ThreadState */
static Field F_parent, F_cls, F_children, F_ok;    /* Context */
static Field F_same_ok;                            /* Context */
static Field F_signal;                             /* LockClass */

static PyObject *thread_local;      /* lockwatch._state._local (a _thread._local) */
static PyObject *state_globals;     /* lockwatch._state's namespace (order_checker is read there) */
static PyObject *locks_globals;     /* lockwatch._locks's namespace (the creation helpers) */
static PyObject *allocate_lock;     /* _thread.allocate_lock */
static PyObject *new_state;         /* lockwatch._state.current_state: makes the calling thread's state */
static PyObject *state_key;         /* key of the cached state in each thread's own dict */
static PyTypeObject *raw_lock_type; /* type(_thread.allocate_lock()) */
static PyMethodDef *raw_acquire, *raw_release, *raw_locked;
static PyObject *false_args;        /* (False,): a try-acquire's argument tuple */
static PyObject *try_args[1];       /* the same, as a vector */
static PyObject *minus_one;         /* -1, the "no timeout" default */

/* Names of the Python slow paths (interned). */
static PyObject *s_state, *s_acquire_slow, *s_learn, *s_warn, *s_abandon, *s_record, *s_unrecord,
    *s_released_by_other, *s_wake_one, *s_drop_stale, *s_child, *s_acquire, *s_release, *s_locked,
    *s_order_checker, *s_same_class_known, *s_kind, *s_recent_classes, *s_lock_class, *s_skip_cache,
    *s_is_skipped, *s_serials, *s_check_new;

static int configured = 0;

/* --- reading and writing __slots__ fields ------------------------------------------------- */

/* A new reference to the field, or NULL with an exception set. */
static inline PyObject *
get_field(PyObject *obj, const Field *field)
{
    if (Py_TYPE(obj) == field->type) {
        PyObject *value = *(PyObject **)((char *)obj + field->offset);
        if (value != NULL) {
            Py_INCREF(value);
            return value;
        }
    }
    return PyObject_GetAttr(obj, field->name);
}

/* Borrowed: only for objects known to be of the exact type, for fields that are set. */
static inline PyObject *
peek_field(PyObject *obj, const Field *field)
{
    if (Py_TYPE(obj) == field->type)
        return *(PyObject **)((char *)obj + field->offset);
    return NULL;
}

static inline int
set_field(PyObject *obj, const Field *field, PyObject *value)
{
    if (Py_TYPE(obj) == field->type) {
        PyObject **slot = (PyObject **)((char *)obj + field->offset);
        PyObject *old = *slot;
        Py_INCREF(value);
        *slot = value;
        Py_XDECREF(old);
        return 0;
    }
    return PyObject_SetAttr(obj, field->name, value);
}

static int
load_field(Field *field, PyObject *type, const char *name)
{
    PyObject *descr = PyObject_GetAttrString(type, name);
    if (descr == NULL)
        return -1;
    if (Py_TYPE(descr) != &PyMemberDescr_Type) {
        Py_DECREF(descr);
        PyErr_Format(PyExc_TypeError, "%s.%s is not a __slots__ field", ((PyTypeObject *)type)->tp_name, name);
        return -1;
    }
    PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
    if (member->type != Py_T_OBJECT_EX || ((PyMemberDescrObject *)descr)->d_common.d_type != (PyTypeObject *)type) {
        Py_DECREF(descr);
        PyErr_Format(PyExc_TypeError, "%s.%s is not an object slot of that class", ((PyTypeObject *)type)->tp_name, name);
        return -1;
    }
    Py_DECREF(descr);
    Py_INCREF(type);
    Py_XSETREF(field->type, (PyTypeObject *)type);
    field->offset = member->offset;
    Py_XSETREF(field->name, PyUnicode_InternFromString(name));
    return field->name == NULL ? -1 : 0;
}

/* --- the real lock -------------------------------------------------------------------------------- */

/* The layout of a _thread.lock on CPython 3.10-3.13. When configure() has
 * checked it against a live lock (size and behaviour, through the lock's own
 * methods), a try-acquire and a release skip the method call and its argument
 * parsing, doing exactly what those methods do. Otherwise the methods are called. */
#if PY_VERSION_HEX < 0x030E0000
typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock_lock;
    PyObject *in_weakreflist;
    char locked;
} RawLock;
#define HAVE_RAW_LAYOUT 1
#endif
static int raw_direct = 0;

typedef PyObject *(*FastWithKeywords)(PyObject *, PyObject *const *, Py_ssize_t, PyObject *);
typedef PyObject *(*Fast)(PyObject *, PyObject *const *, Py_ssize_t);

/* Call one of the raw lock's own methods directly (its C function), with no or (False,) arguments. */
static PyObject *
call_raw(PyObject *real, PyMethodDef *def, PyObject *name, int try_only)
{
    if (Py_TYPE(real) == raw_lock_type) {
        int flags = def->ml_flags & ~(METH_CLASS | METH_STATIC | METH_COEXIST);
        PyObject *args = try_only ? false_args : NULL;
        switch (flags) {
        case METH_NOARGS:
            if (!try_only)
                return def->ml_meth(real, NULL);
            break;
        case METH_VARARGS | METH_KEYWORDS:
            if (args == NULL)
                args = PyTuple_New(0); /* the empty tuple singleton: no allocation */
            else
                Py_INCREF(args);
            if (args == NULL)
                return NULL;
            {
                PyObject *result = ((PyCFunctionWithKeywords)(void (*)(void))def->ml_meth)(real, args, NULL);
                Py_DECREF(args);
                return result;
            }
        case METH_VARARGS:
            if (args == NULL)
                args = PyTuple_New(0);
            else
                Py_INCREF(args);
            if (args == NULL)
                return NULL;
            {
                PyObject *result = def->ml_meth(real, args);
                Py_DECREF(args);
                return result;
            }
        case METH_FASTCALL | METH_KEYWORDS:
            return ((FastWithKeywords)(void (*)(void))def->ml_meth)(real, try_args, try_only ? 1 : 0, NULL);
        case METH_FASTCALL:
            return ((Fast)(void (*)(void))def->ml_meth)(real, try_args, try_only ? 1 : 0);
        default:
            break;
        }
    }
    /* Any other object (or calling convention): an ordinary method call. */
    PyObject *argv[2] = {real, try_args[0]};
    return PyObject_VectorcallMethod(name, argv, (try_only ? 2 : 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* 1 if the real lock was taken, 0 if it is busy, -1 on error. */
static inline int
try_acquire(PyObject *real)
{
#ifdef HAVE_RAW_LAYOUT
    if (raw_direct && Py_TYPE(real) == raw_lock_type) {
        RawLock *raw = (RawLock *)real;
        if (PyThread_acquire_lock_timed(raw->lock_lock, 0, 0) != PY_LOCK_ACQUIRED)
            return 0;
        raw->locked = 1;
        return 1;
    }
#endif
    PyObject *result = call_raw(real, raw_acquire, s_acquire, 1);
    if (result == NULL)
        return -1;
    int taken = PyObject_IsTrue(result);
    Py_DECREF(result);
    return taken;
}

static inline int
release_real(PyObject *real)
{
#ifdef HAVE_RAW_LAYOUT
    if (raw_direct && Py_TYPE(real) == raw_lock_type) {
        RawLock *raw = (RawLock *)real;
        if (!raw->locked) {
            PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
            return -1;
        }
        PyThread_release_lock(raw->lock_lock);
        raw->locked = 0;
        return 0;
    }
#endif
    PyObject *result = call_raw(real, raw_release, s_release, 0);
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 0;
}

/* --- thread states --------------------------------------------------------------------------------- */

static PyObject *lookup_state(int create);

/* The calling thread's ThreadState (a new reference). With create=0, NULL without
 * an exception means the thread has none yet.
 *
 * The state is the one lockwatch._state._local holds for this thread; it is
 * cached in the thread's own dict (PyThreadState_GetDict), which lives and dies
 * with the thread: a new thread (even one reusing a dead thread's ident) starts
 * with an empty dict, and a forked child keeps the forking thread's dict and
 * state, exactly as the thread-local does.
 */
static PyThreadState *last_tstate; /* the thread of the last lookup (a one-entry cache) ... */
static uint64_t last_tstate_id;     /* ... identified by its never-reused id, not only its address */
static PyObject *last_state;        /* ... and its state (a strong reference) */

static PyObject *
current_state(int create)
{
    PyThreadState *tstate = PyThreadState_Get();
    if (tstate == last_tstate && last_state != NULL && PyThreadState_GetID(tstate) == last_tstate_id) {
        Py_INCREF(last_state);
        return last_state;
    }
    PyObject *state = lookup_state(create);
    if (state != NULL) {
        last_tstate = tstate;
        last_tstate_id = PyThreadState_GetID(tstate);
        Py_INCREF(state);
        Py_XSETREF(last_state, state);
    }
    return state;
}

static PyObject *
lookup_state(int create)
{
    PyObject *tdict = PyThreadState_GetDict(); /* borrowed */
    if (tdict != NULL) {
        PyObject *state = PyDict_GetItemWithError(tdict, state_key);
        if (state != NULL) {
            Py_INCREF(state);
            return state;
        }
        if (PyErr_Occurred())
            return NULL;
    }
    PyObject *state = PyObject_GetAttr(thread_local, s_state);
    if (state == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return NULL;
        PyErr_Clear();
        if (!create)
            return NULL;
        state = PyObject_CallNoArgs(new_state);
        if (state == NULL)
            return NULL;
    }
    if (tdict != NULL && PyDict_SetItem(tdict, state_key, state) < 0) {
        Py_DECREF(state);
        return NULL;
    }
    return state;
}

/* --- the lock objects -------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *real;     /* _real: the _thread.lock doing the locking */
    PyObject *owner;    /* _owner: the owner's ThreadState, or None */
    PyObject *cls;      /* _cls: the LockClass */
    PyObject *parked;   /* _parked: parkers of parked waiters (break mode), or None */
    PyObject *preds;    /* _preds: same-class predecessors known by the checker, or None */
    PyObject *weakrefs;
    Py_ssize_t serial;  /* _serial: "L<serial>" in reports */
    struct KnownHeld *known; /* the last held list under which same-class nesting was found known */
} LockBase;

static PyTypeObject LockBase_Type;

typedef struct {
    LockBase base;
    Py_ssize_t count;   /* _count: RLock's recursion count */
} RLockCore;

/* Same-class nesting (two accounts, two forks) is known per instance pair, which
 * the Python core checks by walking the held list (_same_class_known). This memo
 * remembers the last held list (by lock serials, which are never reused) under
 * which that walk said "known", so a repeated acquire under the same locks costs
 * one comparison per held lock. Learned pairs are only ever added, so a memo
 * stays true while the lock's _preds dict is the same one. */
struct KnownHeld {
    PyObject *preds;        /* the _preds dict it was made from (compared by identity only) */
    Py_ssize_t length;
    Py_ssize_t serials[1];  /* ``length`` serials, oldest first */
};

static PyObject *
LockBase_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    LockBase *self = (LockBase *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    Py_INCREF(Py_None);
    self->owner = Py_None;
    Py_INCREF(Py_None);
    self->parked = Py_None;
    Py_INCREF(Py_None);
    self->preds = Py_None;
    return (PyObject *)self;
}

/* A name from a module's namespace (a new reference), or NULL with an exception set. */
static PyObject *
global(PyObject *globals, PyObject *name)
{
    PyObject *value = PyDict_GetItemWithError(globals, name);
    if (value == NULL) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_RuntimeError, "lockwatch: %U is missing", name);
        return NULL;
    }
    Py_INCREF(value);
    return value;
}

/* Where the lock is being created: the first frame outside lockwatch, threading and
 * queue (the twin of _locks._creation_site); a new reference, None if there is none. */
static PyObject *
creation_site(void)
{
    PyObject *skip_cache = global(locks_globals, s_skip_cache);
    if (skip_cache == NULL)
        return NULL;
    PyFrameObject *frame = PyEval_GetFrame(); /* borrowed: the frame that called Lock() */
    Py_XINCREF(frame);
    PyObject *site = NULL;
    while (frame != NULL) {
        PyCodeObject *code = PyFrame_GetCode(frame);
        PyObject *filename = code->co_filename;
        PyObject *skipped = PyDict_GetItemWithError(skip_cache, filename); /* borrowed */
        int skip;
        if (skipped != NULL) {
            skip = PyObject_IsTrue(skipped);
        }
        else if (PyErr_Occurred()) {
            skip = -1;
        }
        else {
            PyObject *is_skipped = global(locks_globals, s_is_skipped);
            PyObject *answer = is_skipped ? PyObject_CallOneArg(is_skipped, filename) : NULL;
            Py_XDECREF(is_skipped);
            skip = answer ? PyObject_IsTrue(answer) : -1;
            Py_XDECREF(answer);
        }
        if (skip < 0) {
            Py_DECREF(code);
            Py_DECREF(frame);
            Py_DECREF(skip_cache);
            return NULL;
        }
        if (!skip) {
            site = Py_BuildValue("(OiO)", filename, PyFrame_GetLineNumber(frame), code->co_name);
            Py_DECREF(code);
            Py_DECREF(frame);
            Py_DECREF(skip_cache);
            return site;
        }
        Py_DECREF(code);
        PyFrameObject *back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
    }
    Py_DECREF(skip_cache);
    Py_RETURN_NONE;
}

/* The LockClass of a lock made at ``site``: a hit in _state._recent_classes, else _state.lock_class(). */
static PyObject *
find_lock_class(PyObject *site, PyObject *name, PyObject *rank, PyObject *kind)
{
    PyObject *key;
    if (site == Py_None)
        key = PyTuple_Pack(5, Py_None, Py_None, name, rank, kind);
    else
        key = PyTuple_Pack(5, PyTuple_GET_ITEM(site, 0), PyTuple_GET_ITEM(site, 1), name, rank, kind);
    if (key == NULL)
        return NULL;
    PyObject *recent = PyDict_GetItemWithError(state_globals, s_recent_classes); /* borrowed */
    PyObject *found = NULL;
    if (recent != NULL && PyDict_CheckExact(recent)) {
        found = PyDict_GetItemWithError(recent, key);
        Py_XINCREF(found);
    }
    Py_DECREF(key);
    if (found != NULL || PyErr_Occurred())
        return found;
    PyObject *lock_class = global(state_globals, s_lock_class);
    if (lock_class == NULL)
        return NULL;
    PyObject *argv[4] = {site, name, rank, kind};
    found = PyObject_Vectorcall(lock_class, argv, 4, NULL);
    Py_DECREF(lock_class);
    return found;
}

/* __init__(name=None, *, rank=None): the twin of InstrumentedLock.__init__ (and RLock's). */
static int
LockBase_init(LockBase *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"name", "rank", NULL};
    PyObject *name = Py_None, *rank = Py_None;
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "lockwatch's C core is not in use (lockwatch._locks did not configure it)");
        return -1;
    }
    if ((PyTuple_GET_SIZE(args) || (kwds != NULL && PyDict_GET_SIZE(kwds)))
        && !PyArg_ParseTupleAndKeywords(args, kwds, "|O$O:__init__", kwlist, &name, &rank))
        return -1;
    if (name != Py_None || rank != Py_None) {
        PyObject *check = global(locks_globals, s_check_new);
        PyObject *type_name = check ? PyObject_GetAttrString((PyObject *)Py_TYPE(self), "__name__") : NULL;
        PyObject *result = NULL;
        if (type_name != NULL) {
            PyObject *argv[3] = {name, rank, type_name};
            result = PyObject_Vectorcall(check, argv, 3, NULL);
        }
        Py_XDECREF(check);
        Py_XDECREF(type_name);
        if (result == NULL)
            return -1;
        Py_DECREF(result);
    }
    PyObject *real = PyObject_CallNoArgs(allocate_lock);
    if (real == NULL)
        return -1;
    PyObject *site = creation_site();
    PyObject *kind = site ? PyObject_GetAttr((PyObject *)Py_TYPE(self), s_kind) : NULL;
    PyObject *cls = kind ? find_lock_class(site, name, rank, kind) : NULL;
    Py_XDECREF(site);
    Py_XDECREF(kind);
    PyObject *serials = cls ? global(locks_globals, s_serials) : NULL;
    PyObject *serial = serials ? PyIter_Next(serials) : NULL;
    Py_XDECREF(serials);
    Py_ssize_t serial_value = serial ? PyLong_AsSsize_t(serial) : -1;
    Py_XDECREF(serial);
    if (cls == NULL || serial_value == -1) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "lockwatch: no serial number for a new lock");
        Py_DECREF(real);
        Py_XDECREF(cls);
        return -1;
    }
    Py_XSETREF(self->real, real);
    Py_XSETREF(self->owner, Py_NewRef(Py_None));
    Py_XSETREF(self->cls, cls);
    self->serial = serial_value;
    Py_XSETREF(self->parked, Py_NewRef(Py_None));
    Py_XSETREF(self->preds, Py_NewRef(Py_None));
    return 0;
}

static int
RLockCore_init(RLockCore *self, PyObject *args, PyObject *kwds)
{
    if (LockBase_init(&self->base, args, kwds) < 0)
        return -1;
    self->count = 0;
    return 0;
}

static int
LockBase_traverse(LockBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->real);
    Py_VISIT(self->owner);
    Py_VISIT(self->cls);
    Py_VISIT(self->parked);
    Py_VISIT(self->preds);
    return 0;
}

static int
LockBase_clear(LockBase *self)
{
    Py_CLEAR(self->real);
    Py_CLEAR(self->owner);
    Py_CLEAR(self->cls);
    Py_CLEAR(self->parked);
    Py_CLEAR(self->preds);
    return 0;
}

static void
LockBase_dealloc(LockBase *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    LockBase_clear(self);
    PyMem_Free(self->known);
    type->tp_free((PyObject *)self);
}

static inline int
check_ready(LockBase *self)
{
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "lockwatch's C core is not in use (lockwatch._locks did not configure it)");
        return -1;
    }
    if (self->real == NULL || self->owner == NULL || self->cls == NULL || self->parked == NULL || self->preds == NULL) {
        PyErr_SetString(PyExc_AttributeError, "lockwatch lock used before __init__ (or a field was deleted)");
        return -1;
    }
    return 0;
}

/* acquire(blocking=True, timeout=-1) arguments, as borrowed references. */
static int
parse_acquire(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject **blocking, PyObject **timeout)
{
    *blocking = Py_True;
    *timeout = NULL;
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "acquire() takes at most 2 arguments (%zd given)", nargs);
        return -1;
    }
    if (nargs >= 1)
        *blocking = args[0];
    if (nargs == 2)
        *timeout = args[1];
    if (kwnames != NULL) {
        Py_ssize_t n = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, i);
            PyObject *value = args[nargs + i];
            if (PyUnicode_CompareWithASCIIString(key, "blocking") == 0 && nargs < 1)
                *blocking = value;
            else if (PyUnicode_CompareWithASCIIString(key, "timeout") == 0 && nargs < 2)
                *timeout = value;
            else {
                PyErr_Format(PyExc_TypeError, "acquire() got an unexpected or repeated keyword argument '%U'", key);
                return -1;
            }
        }
    }
    return 0;
}

/* 1 if ``timeout == -1`` (no timeout), 0 if not, -1 on error. */
static inline int
untimed(PyObject *timeout)
{
    if (timeout == NULL)
        return 1;
    if (PyFloat_CheckExact(timeout))
        return PyFloat_AS_DOUBLE(timeout) == -1.0;
    if (PyLong_CheckExact(timeout)) {
        int overflow;
        long value = PyLong_AsLongAndOverflow(timeout, &overflow);
        return !overflow && value == -1;
    }
    return PyObject_RichCompareBool(timeout, minus_one, Py_EQ);
}

/* An exception interrupted an acquire after the real lock was taken: give the lock back (Python's _abandon). */
static PyObject *
abandon(LockBase *self)
{
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyObject *result = PyObject_CallMethodNoArgs((PyObject *)self, s_abandon);
    if (result != NULL) {
        Py_DECREF(result);
        PyErr_Restore(type, value, traceback);
    }
    else {
        /* _abandon itself failed: its error is raised, with the first as its context. */
        PyObject *type2, *value2, *traceback2;
        PyErr_NormalizeException(&type, &value, &traceback);
        if (traceback != NULL && value != NULL)
            PyException_SetTraceback(value, traceback);
        PyErr_Fetch(&type2, &value2, &traceback2);
        PyErr_NormalizeException(&type2, &value2, &traceback2);
        if (value2 != NULL && value != NULL)
            PyException_SetContext(value2, value); /* steals value */
        else
            Py_XDECREF(value);
        Py_XDECREF(type);
        Py_XDECREF(traceback);
        PyErr_Restore(type2, value2, traceback2);
    }
    return NULL;
}

/* The bookkeeping of a successful acquire (Python's _record): owner, held list, held context. */
static int
record(LockBase *self, PyObject *state)
{
    PyObject *cls = self->cls;
    PyObject *signal = peek_field(cls, &F_signal);
    if (signal != Py_False) {
        /* A hand-off class, or a shape this code does not know: the Python definition. */
        PyObject *result = PyObject_CallMethodOneArg((PyObject *)self, s_record, state);
        if (result == NULL)
            return -1;
        Py_DECREF(result);
        return 0;
    }
    Py_INCREF(state);
    Py_SETREF(self->owner, state);
    PyObject *held = peek_field(state, &F_held);
    PyObject *ctx = peek_field(state, &F_ctx);
    if (held == NULL || ctx == NULL || !PyList_CheckExact(held)) {
        PyErr_SetString(PyExc_TypeError, "lockwatch: unexpected thread state");
        return -1;
    }
    if (PyList_Append(held, (PyObject *)self) < 0)
        return -1;
    PyObject *child = NULL;
    PyObject *children = peek_field(ctx, &F_children);
    if (children != NULL && PyDict_CheckExact(children)) {
        child = PyDict_GetItemWithError(children, cls);
        if (child == NULL && PyErr_Occurred())
            return -1;
        Py_XINCREF(child);
    }
    if (child == NULL) {
        Py_INCREF(ctx); /* ctx.child may run code that replaces state.ctx */
        child = PyObject_CallMethodOneArg(ctx, s_child, cls);
        Py_DECREF(ctx);
        if (child == NULL)
            return -1;
    }
    int result = set_field(state, &F_ctx, child);
    Py_DECREF(child);
    return result;
}

static inline int
is_lock(PyObject *obj, LockBase *self)
{
    return Py_TYPE(obj) == Py_TYPE(self) || PyObject_TypeCheck(obj, &LockBase_Type);
}

/* 1 if the memo says this held list is known for same-class nesting. */
static int
held_is_known(LockBase *self, PyObject *held, PyObject *state)
{
    struct KnownHeld *known = self->known;
    Py_ssize_t n = PyList_GET_SIZE(held);
    if (known == NULL || known->preds != self->preds || known->length != n)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *other = PyList_GET_ITEM(held, i);
        if (!is_lock(other, self) || ((LockBase *)other)->owner != state || ((LockBase *)other)->serial != known->serials[i])
            return 0;
    }
    return 1;
}

/* Remember this held list as known (only when every entry is a lock the thread owns). */
static void
remember_held(LockBase *self, PyObject *held, PyObject *state)
{
    Py_ssize_t n = PyList_GET_SIZE(held);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *other = PyList_GET_ITEM(held, i);
        if (!is_lock(other, self) || ((LockBase *)other)->owner != state)
            return;
    }
    struct KnownHeld *known = self->known;
    if (known == NULL || known->length < n) {
        known = PyMem_Realloc(known, sizeof(struct KnownHeld) + (size_t)n * sizeof(Py_ssize_t));
        if (known == NULL)
            return; /* only a memo: the Python walk answers next time */
        self->known = known;
    }
    known->preds = self->preds;
    known->length = n;
    for (Py_ssize_t i = 0; i < n; i++)
        known->serials[i] = ((LockBase *)PyList_GET_ITEM(held, i))->serial;
}

/* Whether this acquire must go to the lock-order checker (the Python core's test,
 * in its order): the thread holds something, the class is not known to be
 * harmless in the thread's held context, checking is on, and it is not a known
 * same-class nesting. 1 yes, 0 no, -1 error. */
static int
order_unknown(LockBase *self, PyObject *state)
{
    PyObject *ctx = peek_field(state, &F_ctx);
    if (ctx == NULL)
        return 1; /* an unknown shape: let the Python checker decide */
    if (peek_field(ctx, &F_parent) == Py_None)
        return 0; /* the root context (depth 0): nothing held */
    PyObject *cls = self->cls;
    PyObject *ok = peek_field(ctx, &F_ok);
    if (ok == NULL || !PyAnySet_Check(ok))
        return 1;
    int known = PySet_Contains(ok, cls);
    if (known != 0)
        return known < 0 ? -1 : 0;
    PyObject *checker = PyDict_GetItemWithError(state_globals, s_order_checker);
    if (checker == NULL || checker == Py_None)
        return PyErr_Occurred() ? -1 : 0;
    if (self->preds == Py_None)
        return 1;
    PyObject *same_ok = peek_field(ctx, &F_same_ok);
    if (same_ok == NULL || !PyAnySet_Check(same_ok))
        return 1;
    known = PySet_Contains(same_ok, cls);
    if (known <= 0)
        return known < 0 ? -1 : 1;
    PyObject *held = peek_field(state, &F_held);
    if (held == NULL || !PyList_CheckExact(held))
        return 1;
    if (held_is_known(self, held, state))
        return 0;
    PyObject *answer = PyObject_CallMethodOneArg((PyObject *)self, s_same_class_known, state);
    if (answer == NULL)
        return -1;
    known = PyObject_IsTrue(answer);
    Py_DECREF(answer);
    if (known > 0)
        remember_held(self, held, state);
    return known < 0 ? -1 : !known;
}

/* The real lock was just taken for ``state``'s thread: check a new order, record, warn.
 * ``count`` is RLock's new recursion count (0 for a Lock). Any failure gives the lock back. */
static PyObject *
after_taken(LockBase *self, PyObject *state, int blocking, Py_ssize_t count)
{
    PyObject *warning = NULL;
    int unknown = blocking ? order_unknown(self, state) : 0;
    if (unknown < 0)
        return abandon(self);
    if (unknown) {
        warning = PyObject_CallMethodOneArg((PyObject *)self, s_learn, state); /* may raise: refused */
        if (warning == NULL)
            return abandon(self);
        if (warning == Py_None)
            Py_CLEAR(warning);
    }
    if (count)
        ((RLockCore *)self)->count = count;
    if (record(self, state) < 0) {
        Py_XDECREF(warning);
        return abandon(self);
    }
    if (warning != NULL) {
        PyObject *result = PyObject_CallMethodObjArgs((PyObject *)self, s_warn, state, warning, NULL);
        Py_DECREF(warning);
        if (result == NULL)
            return NULL; /* _warn gave the lock back */
        Py_DECREF(result);
    }
    Py_RETURN_TRUE;
}

/* The owner's own release of a lock on top of its held list (Python's inlined _unrecord).
 * ``is_rlock`` selects RLock's rule for a context that does not match (always resync). */
static int
unrecord(LockBase *self, PyObject *state, int is_rlock)
{
    PyObject *held = peek_field(state, &F_held);
    Py_ssize_t n = (held != NULL && PyList_CheckExact(held)) ? PyList_GET_SIZE(held) : 0;
    if (n == 0 || PyList_GET_ITEM(held, n - 1) != (PyObject *)self) {
        /* Not on top (an out-of-order release, a stale list): the Python definition. */
        PyObject *result = PyObject_CallMethodOneArg((PyObject *)self, s_unrecord, state);
        if (result == NULL)
            return -1;
        Py_DECREF(result);
        return 0;
    }
    Py_INCREF(Py_None);
    Py_SETREF(self->owner, Py_None); /* the old owner is ``state``, which the caller holds */
    /* del held[-1]: the list keeps its allocation; a shorter size is a valid list. */
    Py_SET_SIZE((PyVarObject *)held, n - 1);
    Py_DECREF((PyObject *)self); /* the held list's reference (the caller's ``self`` is still alive) */
    PyObject *ctx = peek_field(state, &F_ctx);
    if (ctx != NULL && peek_field(ctx, &F_cls) == self->cls) {
        PyObject *parent = peek_field(ctx, &F_parent);
        if (parent != NULL)
            return set_field(state, &F_ctx, parent);
    }
    if (!is_rlock && peek_field(self->cls, &F_signal) == Py_True)
        return 0;
    PyObject *result = PyObject_CallMethodNoArgs(state, s_drop_stale);
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 0;
}

/* After the real release: a parked waiter (break mode) is woken by the Python code. */
static inline PyObject *
wake_parked(LockBase *self)
{
    PyObject *parked = self->parked;
    if (parked == Py_None || (PyList_CheckExact(parked) && PyList_GET_SIZE(parked) == 0))
        Py_RETURN_NONE;
    int waiting = PyObject_IsTrue(parked);
    if (waiting <= 0)
        return waiting < 0 ? NULL : Py_NewRef(Py_None);
    return PyObject_CallMethodNoArgs((PyObject *)self, s_wake_one);
}

/* --- Lock ---------------------------------------------------------------------------------------- */

static PyObject *
Lock_acquire(LockBase *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *blocking, *timeout;
    if (parse_acquire(args, nargs, kwnames, &blocking, &timeout) < 0 || check_ready(self) < 0)
        return NULL;
    int no_timeout = untimed(timeout);
    if (no_timeout < 0)
        return NULL;
    if (no_timeout) {
        int block = PyObject_IsTrue(blocking);
        if (block < 0)
            return NULL;
        PyObject *state = current_state(1); /* before the try: nothing runs between the try and the owner store */
        if (state == NULL)
            return NULL;
        int taken = try_acquire(self->real);
        PyObject *result = NULL;
        if (taken > 0)
            result = after_taken(self, state, block, 0);
        Py_DECREF(state);
        if (taken != 0)
            return result;
    }
    PyObject *argv[3] = {(PyObject *)self, blocking, timeout == NULL ? minus_one : timeout};
    return PyObject_VectorcallMethod(s_acquire_slow, argv, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static PyObject *
Lock_release(LockBase *self, PyObject *Py_UNUSED(ignored))
{
    if (check_ready(self) < 0)
        return NULL;
    PyObject *owner = self->owner;
    if (owner != Py_None) {
        PyObject *me = current_state(0);
        if (me == NULL && PyErr_Occurred())
            return NULL;
        int failed;
        if (owner == me) {
            failed = unrecord(self, me, 0);
        }
        else {
            PyObject *result = PyObject_CallMethodNoArgs((PyObject *)self, s_released_by_other);
            failed = result == NULL;
            Py_XDECREF(result);
        }
        Py_XDECREF(me);
        if (failed)
            return NULL;
    }
    else {
        /* Taken but not yet recorded: its taker is in a Python slow path between the
         * try and the owner store. Only another thread can be releasing it. */
        PyObject *locked = call_raw(self->real, raw_locked, s_locked, 0);
        if (locked == NULL)
            return NULL;
        int is_locked = PyObject_IsTrue(locked);
        Py_DECREF(locked);
        if (is_locked < 0 || (is_locked && set_field(self->cls, &F_signal, Py_True) < 0))
            return NULL;
    }
    if (release_real(self->real) < 0)
        return NULL;
    return wake_parked(self);
}

static PyObject *
Lock_exit(LockBase *self, PyObject *const *args, Py_ssize_t nargs)
{
    return Lock_release(self, NULL);
}

PyDoc_STRVAR(Lock_acquire_doc, "Acquire the lock, exactly like ``threading.Lock.acquire``.");
PyDoc_STRVAR(Lock_release_doc, "Release the lock; any thread may release it, as with ``threading.Lock``.");

static PyMethodDef Lock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))Lock_acquire, METH_FASTCALL | METH_KEYWORDS, Lock_acquire_doc},
    {"__enter__", (PyCFunction)(void (*)(void))Lock_acquire, METH_FASTCALL | METH_KEYWORDS, Lock_acquire_doc},
    {"release", (PyCFunction)Lock_release, METH_NOARGS, Lock_release_doc},
    {"__exit__", (PyCFunction)(void (*)(void))Lock_exit, METH_FASTCALL, Lock_release_doc},
    {NULL, NULL, 0, NULL},
};

/* --- RLock --------------------------------------------------------------------------------------- */

static PyObject *
RLock_acquire(RLockCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    LockBase *base = &self->base;
    PyObject *blocking, *timeout;
    if (parse_acquire(args, nargs, kwnames, &blocking, &timeout) < 0 || check_ready(base) < 0)
        return NULL;
    PyObject *state = current_state(1);
    if (state == NULL)
        return NULL;
    PyObject *result = NULL;
    int no_timeout = untimed(timeout);
    if (no_timeout < 0)
        goto done;
    if (no_timeout) {
        if (base->owner == state) {
            self->count += 1;
            result = Py_NewRef(Py_True);
            goto done;
        }
        int block = PyObject_IsTrue(blocking);
        if (block < 0)
            goto done;
        int taken = try_acquire(base->real);
        if (taken > 0)
            result = after_taken(base, state, block, 1);
        if (taken != 0)
            goto done;
    }
    {
        PyObject *one = PyLong_FromLong(1);
        PyObject *argv[5] = {(PyObject *)self, state, blocking, timeout == NULL ? minus_one : timeout, one};
        result = PyObject_VectorcallMethod(s_acquire_slow, argv, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_DECREF(one);
    }
done:
    Py_DECREF(state);
    return result;
}

static PyObject *
RLock_release(RLockCore *self, PyObject *Py_UNUSED(ignored))
{
    LockBase *base = &self->base;
    if (check_ready(base) < 0)
        return NULL;
    PyObject *me = current_state(0);
    if (me == NULL || base->owner != me) {
        Py_XDECREF(me);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "cannot release un-acquired lock");
        return NULL;
    }
    if (self->count > 1) {
        self->count -= 1;
        Py_DECREF(me);
        Py_RETURN_NONE;
    }
    self->count = 0;
    int failed = unrecord(base, me, 1);
    Py_DECREF(me);
    if (failed || release_real(base->real) < 0)
        return NULL;
    return wake_parked(base);
}

static PyObject *
RLock_exit(RLockCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    return RLock_release(self, NULL);
}

PyDoc_STRVAR(RLock_acquire_doc, "Acquire the lock, exactly like ``threading.RLock.acquire``.");
PyDoc_STRVAR(RLock_release_doc, "Release once; the lock is free when every acquire has been matched.");

static PyMethodDef RLock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))RLock_acquire, METH_FASTCALL | METH_KEYWORDS, RLock_acquire_doc},
    {"__enter__", (PyCFunction)(void (*)(void))RLock_acquire, METH_FASTCALL | METH_KEYWORDS, RLock_acquire_doc},
    {"release", (PyCFunction)RLock_release, METH_NOARGS, RLock_release_doc},
    {"__exit__", (PyCFunction)(void (*)(void))RLock_exit, METH_FASTCALL, RLock_release_doc},
    {NULL, NULL, 0, NULL},
};

/* --- types ----------------------------------------------------------------------------------------- */

static PyMemberDef LockBase_members[] = {
    {"_real", Py_T_OBJECT_EX, offsetof(LockBase, real), 0, "the _thread.lock doing the locking"},
    {"_owner", Py_T_OBJECT_EX, offsetof(LockBase, owner), 0, "the owner's ThreadState, or None"},
    {"_cls", Py_T_OBJECT_EX, offsetof(LockBase, cls), 0, "the lock's LockClass"},
    {"_parked", Py_T_OBJECT_EX, offsetof(LockBase, parked), 0, "parkers of parked waiters (break mode), or None"},
    {"_preds", Py_T_OBJECT_EX, offsetof(LockBase, preds), 0, "same-class predecessors known by the checker, or None"},
    {"_serial", Py_T_PYSSIZET, offsetof(LockBase, serial), 0, "the serial number (the id is L<serial>)"},
    {"__weaklistoffset__", Py_T_PYSSIZET, offsetof(LockBase, weakrefs), Py_READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyMemberDef RLockCore_members[] = {
    {"_count", Py_T_PYSSIZET, offsetof(RLockCore, count), 0, "the recursion count"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject LockBase_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lockwatch._ccore.LockBase",
    .tp_doc = "The fields of an instrumented lock, as C members (the C core's layout).",
    .tp_basicsize = sizeof(LockBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = LockBase_new,
    .tp_dealloc = (destructor)LockBase_dealloc,
    .tp_traverse = (traverseproc)LockBase_traverse,
    .tp_clear = (inquiry)LockBase_clear,
    .tp_weaklistoffset = offsetof(LockBase, weakrefs),
    .tp_members = LockBase_members,
};

static PyTypeObject LockCore_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lockwatch._ccore.LockCore",
    .tp_doc = "Lock's hot paths in C: acquire, release, __enter__, __exit__.",
    .tp_basicsize = sizeof(LockBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, /* GC, traverse and clear come from LockBase */
    .tp_methods = Lock_methods,
    .tp_init = (initproc)LockBase_init,
};

static PyTypeObject RLockCore_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lockwatch._ccore.RLockCore",
    .tp_doc = "RLock's hot paths in C: acquire, release, __enter__, __exit__, and the recursion count.",
    .tp_basicsize = sizeof(RLockCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, /* GC, traverse and clear come from LockBase */
    .tp_methods = RLock_methods,
    .tp_members = RLockCore_members,
    .tp_init = (initproc)RLockCore_init,
};

/* --- configure() ------------------------------------------------------------------------------------ */

static PyMethodDef *
find_method(PyTypeObject *type, const char *name)
{
    PyObject *descr = PyObject_GetAttrString((PyObject *)type, name);
    if (descr == NULL)
        return NULL;
    PyMethodDef *def = NULL;
    if (Py_TYPE(descr) == &PyMethodDescr_Type)
        def = ((PyMethodDescrObject *)descr)->d_method;
    else
        PyErr_Format(PyExc_TypeError, "%s.%s is not a C method", type->tp_name, name);
    Py_DECREF(descr);
    return def;
}

/* 1 if a lock's own methods and the direct path agree on this lock (see RawLock), else 0. */
static int
raw_layout_agrees(PyObject *allocate)
{
#ifdef HAVE_RAW_LAYOUT
    if (raw_lock_type->tp_basicsize != (Py_ssize_t)sizeof(RawLock))
        return 0;
    PyObject *probe = PyObject_CallNoArgs(allocate);
    if (probe == NULL || Py_TYPE(probe) != raw_lock_type) {
        Py_XDECREF(probe);
        PyErr_Clear();
        return 0;
    }
    RawLock *raw = (RawLock *)probe;
    int agrees = 0;
    if (PyThread_acquire_lock_timed(raw->lock_lock, 0, 0) == PY_LOCK_ACQUIRED) {
        raw->locked = 1;
        PyObject *locked = call_raw(probe, raw_locked, s_locked, 0);
        PyObject *again = call_raw(probe, raw_acquire, s_acquire, 1);
        agrees = locked == Py_True && again == Py_False;
        Py_XDECREF(locked);
        Py_XDECREF(again);
        PyErr_Clear();
        if (agrees) {
            PyThread_release_lock(raw->lock_lock);
            raw->locked = 0;
            locked = call_raw(probe, raw_locked, s_locked, 0);
            again = call_raw(probe, raw_acquire, s_acquire, 1); /* taken by the method: the fields must say so */
            agrees = locked == Py_False && again == Py_True && raw->locked == 1;
            Py_XDECREF(locked);
            Py_XDECREF(again);
            PyErr_Clear();
            if (raw->locked) {
                PyObject *released = call_raw(probe, raw_release, s_release, 0);
                agrees = agrees && released != NULL && raw->locked == 0;
                Py_XDECREF(released);
                PyErr_Clear();
            }
        }
    }
    if (!agrees)
        return 0; /* the probe is left as it is (leaked): a lock in an unknown state is never freed */
    Py_DECREF(probe);
    return 1;
#else
    return 0;
#endif
}

PyDoc_STRVAR(configure_doc,
"configure(state_module, locks_module, raw_lock, allocate_lock)\n\n"
"Tell the C core where the Python core keeps its state: called once by lockwatch._locks.");

static PyObject *
configure(PyObject *module, PyObject *args)
{
    PyObject *state_module, *locks_module, *raw_lock, *allocate;
    if (!PyArg_ParseTuple(args, "O!O!OO:configure", &PyModule_Type, &state_module, &PyModule_Type, &locks_module,
                          &raw_lock, &allocate))
        return NULL;
    if (configured) {
        PyErr_SetString(PyExc_RuntimeError, "the C core is configured once, by lockwatch._locks");
        return NULL;
    }
    PyObject *globals = PyModule_GetDict(state_module); /* borrowed */
    PyObject *state_cls = PyDict_GetItemString(globals, "ThreadState");
    PyObject *context_cls = PyDict_GetItemString(globals, "Context");
    PyObject *lock_class_cls = PyDict_GetItemString(globals, "LockClass");
    PyObject *local = PyDict_GetItemString(globals, "_local");
    PyObject *make_state = PyDict_GetItemString(globals, "current_state");
    if (state_cls == NULL || context_cls == NULL || lock_class_cls == NULL || local == NULL || make_state == NULL
        || !PyType_Check(state_cls) || !PyType_Check(context_cls) || !PyType_Check(lock_class_cls)) {
        PyErr_SetString(PyExc_TypeError, "lockwatch._state does not have the expected shape");
        return NULL;
    }
    if (load_field(&F_held, state_cls, "held") < 0 || load_field(&F_ctx, state_cls, "ctx") < 0
        || load_field(&F_parent, context_cls, "parent") < 0 || load_field(&F_cls, context_cls, "cls") < 0
        || load_field(&F_children, context_cls, "children") < 0 || load_field(&F_ok, context_cls, "ok") < 0
        || load_field(&F_same_ok, context_cls, "same_ok") < 0 || load_field(&F_signal, lock_class_cls, "signal") < 0)
        return NULL;
    PyTypeObject *lock_type = Py_TYPE(raw_lock);
    PyMethodDef *acquire = find_method(lock_type, "acquire");
    PyMethodDef *release = acquire ? find_method(lock_type, "release") : NULL;
    PyMethodDef *locked = release ? find_method(lock_type, "locked") : NULL;
    if (locked == NULL)
        return NULL;
    raw_acquire = acquire;
    raw_release = release;
    raw_locked = locked;
    Py_INCREF(lock_type);
    Py_XSETREF(raw_lock_type, lock_type);
    Py_INCREF(local);
    Py_XSETREF(thread_local, local);
    Py_INCREF(make_state);
    Py_XSETREF(new_state, make_state);
    Py_INCREF(globals);
    Py_XSETREF(state_globals, globals);
    Py_XSETREF(locks_globals, Py_NewRef(PyModule_GetDict(locks_module)));
    Py_XSETREF(allocate_lock, Py_NewRef(allocate));
    raw_direct = raw_layout_agrees(allocate);
    configured = 1;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(direct_doc, "direct_real_lock()\n\nWhether the real lock is taken and released without a method call (its layout was verified).");

static PyObject *
direct_real_lock(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(raw_direct);
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS, configure_doc},
    {"direct_real_lock", direct_real_lock, METH_NOARGS, direct_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef ccore_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "lockwatch._ccore",
    .m_doc = "C hot paths of lockwatch's Lock and RLock (optional; lockwatch/_locks.py has the Python twin).",
    .m_size = -1,
    .m_methods = module_methods,
};

static int
intern(PyObject **target, const char *name)
{
    *target = PyUnicode_InternFromString(name);
    return *target == NULL ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__ccore(void)
{
#ifdef LOCKWATCH_NO_GIL
    PyErr_SetString(PyExc_ImportError, "lockwatch's C core needs the GIL (this is a free-threaded build)");
    return NULL;
#else
    if (intern(&s_state, "state") < 0 || intern(&s_acquire_slow, "_acquire_slow") < 0 || intern(&s_learn, "_learn") < 0
        || intern(&s_warn, "_warn") < 0 || intern(&s_abandon, "_abandon") < 0 || intern(&s_record, "_record") < 0
        || intern(&s_unrecord, "_unrecord") < 0 || intern(&s_released_by_other, "_released_by_other") < 0
        || intern(&s_wake_one, "_wake_one") < 0 || intern(&s_drop_stale, "drop_stale") < 0
        || intern(&s_child, "child") < 0 || intern(&s_acquire, "acquire") < 0 || intern(&s_release, "release") < 0
        || intern(&s_locked, "locked") < 0 || intern(&s_order_checker, "order_checker") < 0
        || intern(&s_same_class_known, "_same_class_known") < 0 || intern(&s_kind, "_kind") < 0
        || intern(&s_recent_classes, "_recent_classes") < 0 || intern(&s_lock_class, "lock_class") < 0
        || intern(&s_skip_cache, "_skip_cache") < 0 || intern(&s_is_skipped, "_is_skipped") < 0
        || intern(&s_serials, "_serials") < 0 || intern(&s_check_new, "_check_new") < 0)
        return NULL;
    state_key = PyUnicode_InternFromString("lockwatch._ccore.state");
    false_args = PyTuple_Pack(1, Py_False);
    try_args[0] = Py_False;
    minus_one = PyLong_FromLong(-1);
    if (state_key == NULL || false_args == NULL || minus_one == NULL)
        return NULL;
    if (PyType_Ready(&LockBase_Type) < 0)
        return NULL;
    LockCore_Type.tp_base = &LockBase_Type;
    RLockCore_Type.tp_base = &LockBase_Type;
    if (PyType_Ready(&LockCore_Type) < 0 || PyType_Ready(&RLockCore_Type) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&ccore_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "LockBase", (PyObject *)&LockBase_Type) < 0
        || PyModule_AddObjectRef(module, "LockCore", (PyObject *)&LockCore_Type) < 0
        || PyModule_AddObjectRef(module, "RLockCore", (PyObject *)&RLockCore_Type) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
#endif
}
