"""A restricted, streaming reader of Python pickles (protocols 0 to 5).

The community tables are pickles (NAS-Bench-201's ``torch.save`` file,
NATS-Bench's bz2 pickles). :mod:`pickle` would (a) run any callable the file
names, and (b) build the whole object graph and keep every memoised object
alive until the end: NAS-Bench-201's 2 GB file needs about 28 GB of RAM that
way. This reader

* resolves only a fixed allow-list of globals (``collections.OrderedDict``,
  numpy dtypes, scalars and arrays, sets); tensors and storages (torch's
  persistent ids and rebuild functions) become :data:`OPAQUE` placeholders
  and are never loaded; any other global is refused with an error naming it;
* calls ``hook(target, items)`` whenever a dict is filled (``SETITEM`` /
  ``SETITEMS``). The hook may consume the items (return ``True``: they are
  not stored), or compact them. After a consuming hook, the memo entries
  created for those items are released, so that finished parts of the file
  can be freed while the rest is still being read.

Released memo entries are containers and long or per-epoch strings; short
strings, numbers and small tuples of them stay (files share such keys
across entries). A later back-reference to a released entry is refused with
:class:`PickleStreamError` rather than read wrongly.
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Callable
from typing import IO, Any

from nasbench_harness.errors import NasbenchError

__all__ = ["OPAQUE", "PickleStreamError", "StreamingUnpickler", "load"]

#: Size of each read from the source stream, bytes.
CHUNK = 1 << 22


class PickleStreamError(NasbenchError):
    """A pickle stream that is truncated, malformed or outside what is read safely."""


class _Opaque:
    """Placeholder for objects that are never loaded (tensors, storages, torch classes)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<not loaded>"

    def __call__(self, *args: Any, **kwargs: Any) -> _Opaque:
        return self


#: The placeholder for tensors, storages and torch globals.
OPAQUE = _Opaque()


def _numpy_globals() -> dict[tuple[str, str], Any]:
    import numpy as np

    found: dict[tuple[str, str], Any] = {
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        found[(module, "scalar")] = _np_scalar
        found[(module, "_reconstruct")] = _np_reconstruct
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        found[(module, "_frombuffer")] = _np_frombuffer
    return found


def _np_frombuffer(buffer: Any, dtype: Any, shape: Any, order: str) -> Any:
    import numpy as np

    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise PickleStreamError("numpy arrays of Python objects are not read")
    arr = np.frombuffer(bytes(buffer), dtype=dtype).copy()
    return arr.reshape(shape, order="F" if order == "F" else "C")


def _np_scalar(dtype: Any, data: Any = None) -> Any:
    import numpy as np

    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise PickleStreamError(f"numpy scalar of dtype {dtype!r} is not read")
    if isinstance(data, str):  # written by Python 2
        data = data.encode("latin1")
    return np.frombuffer(bytes(data), dtype=dtype, count=1)[0]


class _ArrayStub:
    """An ndarray under construction; BUILD gives it its state."""

    __slots__ = ("array",)

    def __init__(self) -> None:
        self.array = None

    def __setstate__(self, state: Any) -> None:
        import numpy as np

        _version, shape, dtype, fortran, raw = state
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise PickleStreamError("numpy arrays of Python objects are not read")
        if isinstance(raw, str):
            raw = raw.encode("latin1")
        arr = np.frombuffer(bytes(raw), dtype=dtype).copy()
        self.array = arr.reshape(shape, order="F" if fortran else "C")


def _np_reconstruct(cls: Any, shape: Any, dtype: Any) -> _ArrayStub:
    return _ArrayStub()


def _encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocols 0 to 2 use it for bytes (latin-1 text)."""
    if encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii"):
        raise PickleStreamError(f"bytes encoded as {encoding!r} are not read")
    return text.encode(encoding)


_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): _encode,
    ("collections", "OrderedDict"): dict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
}


def _keep_in_memo(value: Any) -> bool:
    """Whether a memo entry survives a release: short keys and scalars only."""
    kind = type(value)
    if kind is str:
        return len(value) <= 40 and "@" not in value
    if kind in (int, float, bool) or value is None:
        return True
    if kind is tuple:
        return len(value) <= 4 and all(_keep_in_memo(v) for v in value)
    return False


Hook = Callable[[dict, list], bool]


class StreamingUnpickler:
    """Read one pickle from ``stream``; see the module docstring.

    Parameters
    ----------
    stream
        A binary file object positioned at the start of the pickle.
    hook
        ``hook(target_dict, items) -> bool`` called for every ``SETITEM(S)``
        with the flat list ``[k0, v0, k1, v1, ...]`` before the items are
        stored; returning ``True`` means the hook consumed them.
    label
        Name of the source in error messages.
    """

    def __init__(
        self,
        stream: IO[bytes],
        *,
        hook: Hook | None = None,
        label: str = "pickle",
        initial: bytes = b"",
    ):
        self.stream = stream
        self.unread = initial
        self.hook = hook
        self.label = label
        self.memo: dict[int, Any] = {}
        self.opcodes_read = 0
        self._created: list[int] = []
        self._release_now = False
        self._globals = dict(_SAFE_GLOBALS)
        self._globals.update(_numpy_globals())

    # -- errors ---------------------------------------------------------------

    def _error(self, what: str) -> PickleStreamError:
        return PickleStreamError(f"{self.label}: {what}")

    def _find_global(self, module: str, name: str) -> Any:
        found = self._globals.get((module, name))
        if found is not None:
            return found
        if module == "torch" or module.startswith("torch."):
            return OPAQUE  # tensors, storages: never loaded
        raise self._error(
            f"refers to {module}.{name}, which is not read (loading it could run code); "
            "only plain data, numpy values and tensors (skipped) are supported"
        )

    # -- memo release -----------------------------------------------------------

    def _release(self, since: int) -> None:
        memo = self.memo
        created = self._created
        for idx in created[since:]:
            if idx in memo and not _keep_in_memo(memo[idx]):
                del memo[idx]
        del created[since:]

    # -- the machine ------------------------------------------------------------

    def load(self) -> Any:
        """Run the pickle to its STOP and return the object."""
        try:
            return self._load()
        except NasbenchError:
            raise
        except Exception as exc:  # a damaged stream breaks the machine in any way (MemoryError too)
            raise self._error(
                f"is truncated or malformed ({type(exc).__name__}: {exc}); download it again"
            ) from None

    def _load(self) -> Any:  # noqa: C901 - one dispatch loop, kept flat for speed
        read = self.stream.read
        unpack_from = struct.unpack_from
        memo = self.memo
        created = self._created
        stack: list[Any] = []
        marks: list[tuple[int, int]] = []
        append = stack.append
        hook = self.hook
        buf = self.unread
        pos = 0
        end = len(buf)
        next_memo = 0
        eof = False
        n_ops = 0

        def fill(buf: bytes, pos: int, need: int) -> tuple[bytes, int, int, bool]:
            """Make ``need`` bytes available at ``pos`` (or raise at end of stream)."""
            parts = [buf[pos:]]
            have = len(parts[0])
            at_eof = False
            while have < need + 64:
                chunk = read(max(CHUNK, need - have))
                if not chunk:
                    at_eof = True
                    break
                parts.append(chunk)
                have += len(chunk)
            new = b"".join(parts)
            if len(new) < need:
                raise self._error(
                    "ends in the middle of an object (truncated file?); download it again"
                )
            return new, 0, len(new), at_eof

        def put(idx: int, value: Any) -> int:
            memo[idx] = value
            created.append(idx)
            return max(next_memo, idx + 1)

        def missing(idx: int) -> PickleStreamError:
            return self._error(
                f"refers back to memo entry {idx}, which is not stored: either the file is "
                "damaged or it shares an object that was released while streaming (a layout "
                "this importer does not support)"
            )

        def pop_mark() -> list:
            if not marks:
                raise self._error("has an opcode that needs a MARK but none is open")
            at, _ = marks.pop()
            items = stack[at:]
            del stack[at:]
            return items

        def set_items(items: list) -> None:
            target = stack[-1]
            if len(items) % 2:
                raise self._error("has SETITEMS with an odd number of items")
            if hook is not None and isinstance(target, dict) and hook(target, items):
                return
            try:
                for i in range(0, len(items), 2):
                    target[items[i]] = items[i + 1]
            except TypeError as exc:
                raise self._error(f"has an unusable dict key or target ({exc})") from None

        while True:
            if end - pos < 64 and not eof:
                buf, pos, end, eof = fill(buf, pos, 1)
            if pos >= end:
                raise self._error(
                    "ends before its STOP opcode (truncated file?); download it again"
                )
            op = buf[pos]
            pos += 1
            n_ops += 1
            # most frequent opcodes first
            if op == 0x47:  # BINFLOAT
                append(unpack_from(">d", buf, pos)[0])
                pos += 8
            elif op == 0x4B:  # BININT1
                append(buf[pos])
                pos += 1
            elif op == 0x71:  # BINPUT
                idx = buf[pos]
                memo[idx] = stack[-1]
                created.append(idx)
                if idx >= next_memo:
                    next_memo = idx + 1
                pos += 1
            elif op == 0x8C:  # SHORT_BINUNICODE
                n = buf[pos]
                if pos + 1 + n > end:
                    buf, pos, end, eof = fill(buf, pos, 1 + n)
                append(codecs.utf_8_decode(buf[pos + 1 : pos + 1 + n], "surrogatepass", True)[0])
                pos += 1 + n
            elif op == 0x68:  # BINGET
                try:
                    append(memo[buf[pos]])
                except KeyError:
                    raise missing(buf[pos]) from None
                pos += 1
            elif op == 0x94:  # MEMOIZE
                next_memo = put(next_memo, stack[-1])
            elif op == 0x72:  # LONG_BINPUT
                next_memo = put(unpack_from("<I", buf, pos)[0], stack[-1])
                pos += 4
            elif op == 0x6A:  # LONG_BINGET
                idx = unpack_from("<I", buf, pos)[0]
                try:
                    append(memo[idx])
                except KeyError:
                    raise missing(idx) from None
                pos += 4
            elif op == 0x28:  # MARK
                marks.append((len(stack), len(created)))
            elif op == 0x75:  # SETITEMS
                since = marks[-1][1] if marks else 0
                items = pop_mark()
                set_items(items)
                if self._release_now:  # a hook consumed the items: free what they used
                    self._release(since)
                    self._release_now = False
            elif op == 0x73:  # SETITEM (no MARK: its objects stay in the memo)
                value = stack.pop()
                key = stack.pop()
                set_items([key, value])
                self._release_now = False
            elif op == 0x7D:  # EMPTY_DICT
                append({})
            elif op == 0x4A:  # BININT
                append(unpack_from("<i", buf, pos)[0])
                pos += 4
            elif op == 0x4D:  # BININT2
                append(unpack_from("<H", buf, pos)[0])
                pos += 2
            elif op == 0x5D:  # EMPTY_LIST
                append([])
            elif op == 0x65:  # APPENDS
                items = pop_mark()
                target = stack[-1]
                if isinstance(target, list):
                    target.extend(items)
                else:
                    raise self._error(f"appends to a {type(target).__name__}, not a list")
            elif op == 0x61:  # APPEND
                value = stack.pop()
                target = stack[-1]
                if not isinstance(target, list):
                    raise self._error(f"appends to a {type(target).__name__}, not a list")
                target.append(value)
            elif op == 0x29:  # EMPTY_TUPLE
                append(())
            elif op == 0x85:  # TUPLE1
                stack[-1] = (stack[-1],)
            elif op == 0x86:  # TUPLE2
                b = stack.pop()
                stack[-1] = (stack[-1], b)
            elif op == 0x87:  # TUPLE3
                c = stack.pop()
                b = stack.pop()
                stack[-1] = (stack[-1], b, c)
            elif op == 0x74:  # TUPLE
                append(tuple(pop_mark()))
            elif op == 0x4E:  # NONE
                append(None)
            elif op == 0x88:  # NEWTRUE
                append(True)
            elif op == 0x89:  # NEWFALSE
                append(False)
            elif op == 0x58:  # BINUNICODE
                n = unpack_from("<I", buf, pos)[0]
                pos += 4
                if pos + n > end:
                    buf, pos, end, eof = fill(buf, pos, n)
                append(codecs.utf_8_decode(buf[pos : pos + n], "surrogatepass", True)[0])
                pos += n
            elif op == 0x8D:  # BINUNICODE8
                n = unpack_from("<Q", buf, pos)[0]
                pos += 8
                if pos + n > end:
                    buf, pos, end, eof = fill(buf, pos, n)
                append(codecs.utf_8_decode(buf[pos : pos + n], "surrogatepass", True)[0])
                pos += n
            elif op == 0x8A:  # LONG1
                n = buf[pos]
                append(int.from_bytes(buf[pos + 1 : pos + 1 + n], "little", signed=True))
                pos += 1 + n
            elif op == 0x8B:  # LONG4
                n = unpack_from("<i", buf, pos)[0]
                pos += 4
                if pos + n > end:
                    buf, pos, end, eof = fill(buf, pos, n)
                append(int.from_bytes(buf[pos : pos + n], "little", signed=True))
                pos += n
            elif op in (0x43, 0x42, 0x8E, 0x55, 0x54, 0x96):
                # SHORT_BINBYTES, BINBYTES, BINBYTES8, SHORT_BINSTRING, BINSTRING, BYTEARRAY8
                size = {0x43: 1, 0x55: 1, 0x42: 4, 0x54: 4, 0x8E: 8, 0x96: 8}[op]
                fmt = {1: "<B", 4: "<I", 8: "<Q"}[size]
                n = unpack_from(fmt, buf, pos)[0]
                pos += size
                if pos + n > end:
                    buf, pos, end, eof = fill(buf, pos, n)
                data = buf[pos : pos + n]
                pos += n
                if op in (0x55, 0x54):  # Python 2 str
                    try:
                        append(data.decode("ascii"))
                    except UnicodeDecodeError:
                        append(data)
                elif op == 0x96:
                    append(bytearray(data))
                else:
                    append(data)
            elif op == 0x80:  # PROTO
                if buf[pos] > 5:
                    raise self._error(f"uses pickle protocol {buf[pos]}, newer than 5")
                pos += 1
            elif op == 0x95:  # FRAME
                pos += 8
            elif op == 0x2E:  # STOP
                if len(stack) != 1:
                    raise self._error("ends with a malformed stack")
                self.opcodes_read = n_ops
                self.unread = buf[pos:end]
                return stack[0]
            elif op == 0x30:  # POP
                if stack and (not marks or marks[-1][0] < len(stack)):
                    stack.pop()
                else:
                    marks.pop()
            elif op == 0x31:  # POP_MARK
                pop_mark()
            elif op == 0x32:  # DUP
                append(stack[-1])
            elif op == 0x8F:  # EMPTY_SET
                append(set())
            elif op == 0x90:  # ADDITEMS
                items = pop_mark()
                stack[-1].update(items)
            elif op == 0x91:  # FROZENSET
                append(frozenset(pop_mark()))
            elif op == 0x6C:  # LIST
                append(pop_mark())
            elif op == 0x64:  # DICT
                items = pop_mark()
                append({items[i]: items[i + 1] for i in range(0, len(items), 2)})
            elif op == 0x63:  # GLOBAL
                line_end = buf.find(b"\n", pos)
                line_end2 = buf.find(b"\n", line_end + 1)
                if line_end < 0 or line_end2 < 0:
                    raise self._error("has a malformed GLOBAL opcode")
                module = buf[pos:line_end].decode("utf-8")
                name = buf[line_end + 1 : line_end2].decode("utf-8")
                pos = line_end2 + 1
                append(self._find_global(module, name))
            elif op == 0x93:  # STACK_GLOBAL
                name = stack.pop()
                module = stack.pop()
                append(self._find_global(str(module), str(name)))
            elif op == 0x52:  # REDUCE
                args = stack.pop()
                func = stack[-1]
                stack[-1] = self._call(func, args)
            elif op == 0x81:  # NEWOBJ
                args = stack.pop()
                cls = stack[-1]
                stack[-1] = self._call(cls, args)
            elif op == 0x92:  # NEWOBJ_EX
                kwargs = stack.pop()
                args = stack.pop()
                cls = stack[-1]
                stack[-1] = self._call(cls, args, kwargs)
            elif op == 0x62:  # BUILD
                state = stack.pop()
                self._build(stack[-1], state)
            elif op == 0x51:  # BINPERSID
                stack[-1] = OPAQUE
            elif op == 0x50:  # PERSID
                line_end = buf.find(b"\n", pos)
                pos = line_end + 1
                append(OPAQUE)
            elif op in (0x49, 0x4C, 0x46, 0x56, 0x53, 0x67, 0x70):
                # INT, LONG, FLOAT, UNICODE, STRING, GET, PUT: protocol 0 text lines
                line_end = buf.find(b"\n", pos)
                if line_end < 0:
                    raise self._error("has a text opcode without its line end")
                text = buf[pos:line_end]
                pos = line_end + 1
                if op == 0x49:
                    append(True if text == b"01" else False if text == b"00" else int(text))
                elif op == 0x4C:
                    append(int(text.rstrip(b"L")))
                elif op == 0x46:
                    append(float(text))
                elif op == 0x56:
                    append(text.decode("raw-unicode-escape"))
                elif op == 0x53:
                    append(codecs.escape_decode(text[1:-1])[0].decode("latin1"))
                elif op == 0x67:
                    if int(text) not in memo:
                        raise missing(int(text))
                    append(memo[int(text)])
                else:
                    next_memo = put(int(text), stack[-1])
            else:
                raise self._error(
                    f"has opcode 0x{op:02x} at byte {pos - 1} of a read chunk, which is not "
                    "read (object instances, extensions or out-of-band buffers)"
                )

    def _call(self, func: Any, args: Any, kwargs: Any = None) -> Any:
        if func is OPAQUE:
            return OPAQUE
        allowed = set(self._globals.values())
        if func not in allowed:
            raise self._error(f"calls {func!r}, which is not read")
        if not isinstance(args, tuple):
            raise self._error("has a REDUCE whose arguments are not a tuple")
        if func is dict or func in (set, frozenset):
            return func(*args)
        return func(*args, **(kwargs or {}))

    def _build(self, obj: Any, state: Any) -> None:
        if obj is OPAQUE:
            return
        if isinstance(obj, _ArrayStub):
            obj.__setstate__(state)
            return
        import numpy as np

        if isinstance(obj, np.dtype):
            obj.__setstate__(state)
            return
        if isinstance(obj, dict) and isinstance(state, dict):
            obj.update(state)
            return
        raise self._error(f"sets the state of a {type(obj).__name__}, which is not read")

    def release_items(self) -> None:
        """Called by a hook that consumed items: release their memo entries afterwards."""
        self._release_now = True


def finish_arrays(value: Any) -> Any:
    """Replace numpy array stubs by their arrays, recursively (small objects only)."""
    if isinstance(value, _ArrayStub):
        return value.array
    if isinstance(value, dict):
        return {k: finish_arrays(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finish_arrays(v) for v in value]
    if isinstance(value, tuple):
        return tuple(finish_arrays(v) for v in value)
    return value


def load(stream: IO[bytes], *, hook: Hook | None = None, label: str = "pickle") -> Any:
    """Read one pickle from ``stream`` with :class:`StreamingUnpickler`."""
    return StreamingUnpickler(stream, hook=hook, label=label).load()
