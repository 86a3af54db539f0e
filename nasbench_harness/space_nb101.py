"""The NAS-Bench-101 cell search space (``nb101``), in its hashing canonical form.

A cell is a DAG of at most 7 vertices (vertex 0 = input, the last = output)
and at most 9 edges; every interior vertex carries one op of :data:`OPS`.
A cell is kept only if every vertex lies on a path from input to output
(after pruning, as NAS-Bench-101 does). Isomorphic cells share one
*module hash* (NAS-Bench-101's iterated-MD5 vertex labelling, reproduced by
:func:`module_hash`), and the space has one arch per hash: 423,624 archs.

Index
    Archs are numbered in ascending order of their module hash (hex), so the
    index does not depend on how the space was enumerated.
String
    ``"<op>,<op>,...;<row>,<row>,..."``: the ops of the vertices (``input`` and
    ``output`` included) and the rows of the adjacency matrix as ``0``/``1``
    strings, e.g. ``"input,conv3x3-bn-relu,output;010,001,000"``. The
    representative of a hash is the first cell met when enumerating vertex
    counts 2..7, edge sets in binary order and ops in product order.

Categorical encoding
    :meth:`NB101Space.encode_categorical` writes a cell as 26 categorical
    variables (``categorical_sizes``): the 21 upper-triangular entries of a
    7 x 7 adjacency matrix, row by row (``(0,1), (0,2), ..., (0,6), (1,2),
    ..., (5,6)``; 2 choices each), then the ops of slots 1..5 (position in
    :data:`OPS`; 3 choices each). A pruned cell of ``n`` vertices sits in the
    7 slots in a fixed way: the input in slot 0, its interior vertices in
    slots ``1..n-2`` (in order), the output in slot 6; the unused slots
    ``n-1..5`` have no edges and op 0. :meth:`NB101Space.decode_categorical`
    builds the 7-vertex cell of any code, prunes it, checks the space's
    rules (at most 9 edges, output reachable from input) and looks up its
    hash, giving -1 for codes that are no arch; ``decode(encode(i)) == i``.
Path encoding
    :meth:`NB101Space.encode_path` is BANANAS' path encoding (White et al.,
    2021): one binary feature per input-to-output path, labelled by the
    sequence of its interior ops. With 3 ops and at most 5 interior vertices
    there are ``3**0 + 3**1 + ... + 3**5 = 364`` features, ordered by the
    number of interior ops (0, the direct edge, first), then by the op
    sequence in base 3 (ops in :data:`OPS` order, first op most significant).

The space is enumerated once (about 1.3 million labelled graphs, a few
minutes) and cached as ``nb101-space-v1.npz`` in ``$NASBENCH_CACHE_DIR``
(default ``$XDG_CACHE_HOME/nasbench-harness``, else ``~/.cache/nasbench-harness``).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasbench_harness.errors import ArchError
from nasbench_harness.space import _check_codes

__all__ = ["OPS", "NB101Space", "module_hash", "prune"]

#: Interior ops, in the order whose positions label vertices in the hash.
OPS: tuple[str, ...] = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
INPUT = "input"
OUTPUT = "output"
MAX_VERTICES = 7
MAX_EDGES = 9
#: Number of archs (unique module hashes) of the space.
N_ARCHS = 423_624
_CACHE_NAME = "nb101-space-v1.npz"
_NO_OP = 255
#: Upper-triangular entries of the 7 x 7 matrix, row by row: the edge variables.
_SLOT_PAIRS: tuple[tuple[int, int], ...] = tuple(
    (a, b) for a in range(MAX_VERTICES) for b in range(a + 1, MAX_VERTICES)
)
_N_EDGE_VARS = len(_SLOT_PAIRS)
_PAIR_COLUMN = {pair: k for k, pair in enumerate(_SLOT_PAIRS)}
#: First feature of the paths with ``L`` interior ops, ``L = 0..5`` (and the total).
_PATH_OFFSETS = tuple((len(OPS) ** k - 1) // (len(OPS) - 1) for k in range(MAX_VERTICES))


def module_hash(matrix: Any, ops: Sequence[str]) -> str:
    """NAS-Bench-101's module hash of a (pruned) cell.

    Each vertex starts from the MD5 of ``(out_degree, in_degree, label)``
    (label -1 input, -2 output, else the position of its op in :data:`OPS`);
    then, as many times as there are vertices, each vertex's hash becomes the
    MD5 of its predecessors' sorted hashes, ``|``, its successors' sorted
    hashes, ``|``, its own hash. The module hash is the MD5 of the sorted
    final hashes' list representation.
    """
    m = np.asarray(matrix, dtype=np.int64)
    labels = [-1] + [OPS.index(op) for op in ops[1:-1]] + [-2]
    return _hash(m, labels)


def _hash(m: np.ndarray, labels: Sequence[int]) -> str:
    n = len(labels)
    out_deg = m.sum(axis=1).tolist()
    in_deg = m.sum(axis=0).tolist()
    preds = [[w for w in range(n) if m[w, v]] for v in range(n)]
    succs = [[w for w in range(n) if m[v, w]] for v in range(n)]
    return _hash_lists(n, out_deg, in_deg, preds, succs, labels)


def _hash_lists(n, out_deg, in_deg, preds, succs, labels) -> str:
    md5 = hashlib.md5
    hashes = [
        md5(str((out_deg[v], in_deg[v], labels[v])).encode("utf-8")).hexdigest() for v in range(n)
    ]
    for _ in range(n):
        hashes = [
            md5(
                (
                    "".join(sorted([hashes[w] for w in preds[v]]))
                    + "|"
                    + "".join(sorted([hashes[w] for w in succs[v]]))
                    + "|"
                    + hashes[v]
                ).encode("utf-8")
            ).hexdigest()
            for v in range(n)
        ]
    return md5(str(sorted(hashes)).encode("utf-8")).hexdigest()


def prune(matrix: Any, ops: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Drop vertices not on an input-to-output path (NAS-Bench-101's pruning).

    Raises :class:`ArchError` if the output cannot be reached from the input.
    """
    m = np.array(matrix, dtype=np.int64)
    n = m.shape[0]
    if m.shape != (n, n) or len(ops) != n:
        raise ArchError(f"adjacency of shape {m.shape} does not fit {len(ops)} ops")
    from_input = {0}
    for v in range(1, n):
        if any(m[u, v] for u in from_input):
            from_input.add(v)
    to_output = {n - 1}
    for v in range(n - 2, -1, -1):
        if any(m[v, w] for w in to_output):
            to_output.add(v)
    keep = sorted(from_input & to_output)
    if 0 not in keep or n - 1 not in keep:
        raise ArchError("the cell's output is not reachable from its input")
    return m[np.ix_(keep, keep)], [ops[i] for i in keep]


def _check_cell(m: np.ndarray, ops: Sequence[str]) -> None:
    n = m.shape[0]
    if n < 2 or n > MAX_VERTICES:
        raise ArchError(f"a NB101 cell has 2..{MAX_VERTICES} vertices, got {n}")
    if np.any(np.tril(m) != 0) or np.any((m != 0) & (m != 1)):
        raise ArchError("a NB101 adjacency matrix is 0/1 and strictly upper triangular")
    if int(m.sum()) > MAX_EDGES:
        raise ArchError(f"a NB101 cell has at most {MAX_EDGES} edges, got {int(m.sum())}")
    if ops[0] != INPUT or ops[-1] != OUTPUT or any(op not in OPS for op in ops[1:-1]):
        raise ArchError(f"NB101 ops are input, then {', '.join(OPS)}, then output; got {list(ops)}")


def _cache_path() -> Path:
    from nasbench_harness.data import cache_dir  # one cache folder for data and spaces

    return cache_dir() / _CACHE_NAME


def _enumerate() -> dict[str, np.ndarray]:
    """All cells, one per module hash: arrays sorted by hash."""
    found: dict[str, tuple[int, int, tuple[int, ...]]] = {}
    for n in range(2, MAX_VERTICES + 1):
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        bits = np.arange(2 ** len(pairs), dtype=np.int64)
        has_out = np.zeros((bits.size, n), dtype=bool)
        has_in = np.zeros((bits.size, n), dtype=bool)
        edges = np.zeros(bits.size, dtype=np.int64)
        for k, (i, j) in enumerate(pairs):
            on = (bits >> k) & 1 == 1
            has_out[:, i] |= on
            has_in[:, j] |= on
            edges += on
        ok = has_out[:, : n - 1].all(axis=1) & has_in[:, 1:].all(axis=1) & (edges <= MAX_EDGES)
        for b in bits[ok].tolist():
            on = [(i, j) for k, (i, j) in enumerate(pairs) if (b >> k) & 1]
            preds = [[i for i, j in on if j == v] for v in range(n)]
            succs = [[j for i, j in on if i == v] for v in range(n)]
            out_deg = [len(s) for s in succs]
            in_deg = [len(p) for p in preds]
            for interior in itertools.product(range(len(OPS)), repeat=n - 2):
                labels = (-1, *interior, -2)
                key = _hash_lists(n, out_deg, in_deg, preds, succs, labels)
                if key not in found:
                    found[key] = (n, b, interior)
    keys = sorted(found)
    count = np.zeros(len(keys), dtype=np.uint8)
    edge_bits = np.zeros(len(keys), dtype=np.uint32)
    ops = np.full((len(keys), MAX_VERTICES - 2), _NO_OP, dtype=np.uint8)
    for i, key in enumerate(keys):
        n, b, interior = found[key]
        count[i] = n
        edge_bits[i] = b
        ops[i, : len(interior)] = interior
    return {
        "hash": np.array(keys, dtype="S32"),
        "n_vertices": count,
        "edge_bits": edge_bits,
        "ops": ops,
    }


class NB101Space:
    """The NAS-Bench-101 space: index <-> cell <-> module hash; uniform sampling.

    Use :func:`get_space` (``get_space("nb101")``); the arrays are loaded from
    the cache, or enumerated and cached on first use.
    """

    name = "nb101"
    ops: tuple[str, ...] = OPS
    n_archs = N_ARCHS
    #: Choices of each categorical variable: 21 edge bits, then 5 slot ops.
    categorical_sizes: tuple[int, ...] = (2,) * _N_EDGE_VARS + (len(OPS),) * (MAX_VERTICES - 2)
    #: Features of :meth:`encode_path` (364).
    n_paths = _PATH_OFFSETS[-1]

    def __init__(self, arrays: dict[str, np.ndarray] | None = None) -> None:
        if arrays is None:
            arrays = _load_or_build()
        self._hash = arrays["hash"]
        self._n = arrays["n_vertices"]
        self._bits = arrays["edge_bits"]
        self._ops = arrays["ops"]
        if self._hash.size != N_ARCHS:
            raise ArchError(
                f"the NB101 space has {self._hash.size} archs, expected {N_ARCHS}; delete "
                f"{_cache_path()} to enumerate it again"
            )

    def __repr__(self) -> str:
        return f"NB101Space(n_archs={self.n_archs})"

    # -- conversions ---------------------------------------------------------

    def index_of_hash(self, key: str) -> int:
        """Index of the arch with NAS-Bench-101 module hash ``key`` (32 hex digits)."""
        raw = key.encode("ascii") if isinstance(key, str) else bytes(key)
        i = int(np.searchsorted(self._hash, raw))
        if i < self._hash.size and self._hash[i] == raw:
            return i
        raise ArchError(f"module hash {key!r} is not an arch of the NB101 space")

    def index(self, arch: Any) -> int:
        """Index of an arch: an index, a module hash, a cell string or ``(matrix, ops)``."""
        if isinstance(arch, (bool, np.bool_)):
            raise ArchError(f"arch {arch!r} is a bool; pass an index, hash or cell string")
        if isinstance(arch, (int, np.integer)):
            if 0 <= int(arch) < self.n_archs:
                return int(arch)
            raise ArchError(f"arch index {int(arch)} is outside 0..{self.n_archs - 1}")
        if isinstance(arch, str):
            text = arch.strip()
            if len(text) == 32 and all(c in "0123456789abcdef" for c in text):
                return self.index_of_hash(text)
            matrix, ops = _parse(text)
        elif isinstance(arch, (tuple, list)) and arch and all(isinstance(a, str) for a in arch):
            matrix, ops = _parse(",".join(arch))  # a cell string split at its commas
        elif isinstance(arch, (tuple, list)) and len(arch) == 2:
            matrix, ops = arch
        else:
            raise ArchError(
                f"cannot read an NB101 arch from {arch!r}; pass an index, a module hash or "
                "'input,conv3x3-bn-relu,output;010,001,000'"
            )
        return self.index_of_hash(self.hash_of(matrix, ops))

    def hash_of(self, matrix: Any, ops: Sequence[str]) -> str:
        """Module hash of a cell after pruning, checking the space's rules."""
        m, kept = prune(matrix, list(ops))
        _check_cell(m, kept)
        return module_hash(m, kept)

    def cell(self, arch: Any) -> tuple[np.ndarray, list[str]]:
        """The representative cell ``(matrix, ops)`` of an arch."""
        i = self.index(arch)
        return self._cell_arrays(int(self._n[i]), int(self._bits[i]), self._ops[i])

    @staticmethod
    def _cell_arrays(n: int, bits: int, ops: np.ndarray) -> tuple[np.ndarray, list[str]]:
        m = np.zeros((n, n), dtype=np.int64)
        k = 0
        for a in range(n):
            for b in range(a + 1, n):
                m[a, b] = (bits >> k) & 1
                k += 1
        return m, [INPUT] + [OPS[o] for o in ops[: n - 2]] + [OUTPUT]

    def module_hash(self, arch: Any) -> str:
        """NAS-Bench-101 module hash of an arch."""
        return self._hash[self.index(arch)].decode("ascii")

    def to_string(self, arch: Any) -> str:
        """The arch as ``"ops;rows"`` (see the module docstring)."""
        return self._strings[self.index(arch)]

    @functools.cached_property
    def _strings(self) -> list[str]:
        """Every arch's string, built once from the few distinct matrices and op lists."""
        rows_of: dict[tuple[int, int], str] = {}
        ops_of: dict[bytes, str] = {}
        out = []
        for n, bits, ops in zip(self._n.tolist(), self._bits.tolist(), self._ops):
            rows = rows_of.get((n, bits))
            if rows is None:
                m, _ = self._cell_arrays(n, bits, ops)
                rows = ",".join("".join(str(int(x)) for x in row) for row in m)
                rows_of[(n, bits)] = rows
            key = ops[: n - 2].tobytes()
            names = ops_of.get(key)
            if names is None:
                names = ",".join([INPUT] + [OPS[o] for o in ops[: n - 2]] + [OUTPUT])
                ops_of[key] = names
            out.append(names + ";" + rows)
        return out

    # -- what tables and searches use -------------------------------------------

    @functools.cached_property
    def canonical_ids(self) -> np.ndarray:
        """Each arch is its own class (the hash already merges isomorphic cells)."""
        out = np.arange(self.n_archs, dtype=np.int64)
        out.flags.writeable = False
        return out

    @property
    def unique_indices(self) -> np.ndarray:
        return self.canonical_ids

    @property
    def n_unique(self) -> int:
        return self.n_archs

    def canonical(self, arch: Any) -> int:
        return self.index(arch)

    @functools.cached_property
    def connected(self) -> np.ndarray:
        """Every NB101 cell connects input to output."""
        out = np.ones(self.n_archs, dtype=bool)
        out.flags.writeable = False
        return out

    def _changes(self, arch: Any) -> list[tuple[np.ndarray, list[str]]]:
        """Cells one change away: one edge added or removed, or one interior op replaced."""
        m, ops = self.cell(arch)
        n = m.shape[0]
        out = []
        for a in range(n):
            for b in range(a + 1, n):
                flipped = m.copy()
                flipped[a, b] ^= 1
                out.append((flipped, ops))
        for v in range(1, n - 1):
            for op in OPS:
                if op != ops[v]:
                    out.append((m, ops[:v] + [op] + ops[v + 1 :]))
        if n < MAX_VERTICES:  # a new vertex on an edge a -> b: a -> new -> b
            for a, b in zip(*np.nonzero(m)):
                grown = np.insert(np.insert(m, a + 1, 0, axis=0), a + 1, 0, axis=1)
                grown[a, a + 1] = 1
                grown[a + 1, b + 1] = 1
                for op in OPS:
                    new_ops = ops[: a + 1] + [op] + ops[a + 1 :]
                    out.append((grown, new_ops))  # alongside the edge
                    split = grown.copy()
                    split[a, b + 1] = 0
                    out.append((split, new_ops))  # in place of the edge
        return out

    def _valid_index(self, matrix: np.ndarray, ops: list[str]) -> int | None:
        try:
            return self.index_of_hash(self.hash_of(matrix, ops))
        except ArchError:
            return None

    def neighbours(self, arch: Any) -> list[int]:
        """Indices of the distinct archs one change away, in a fixed order.

        A change flips one edge, replaces one interior op, or puts a new vertex
        on an edge (beside it or in its place); the result is pruned and changes
        that break the space's rules (too many edges or vertices, output not
        reachable) are left out.
        """
        me = self.index(arch)
        found = []
        for matrix, ops in self._changes(me):
            i = self._valid_index(matrix, ops)
            if i is not None and i != me and i not in found:
                found.append(i)
        return found

    def mutate(self, arch: Any, rng: np.random.Generator) -> int:
        """A uniformly drawn arch among :meth:`neighbours` (one change away)."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError("rng must be a numpy.random.Generator")
        options = self.neighbours(arch)
        return int(options[rng.integers(len(options))])

    def sample(self, rng: np.random.Generator, size: int | None = None) -> int | np.ndarray:
        """Uniform random arch index (``size=None``) or int64 array of them."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError("rng must be a numpy.random.Generator")
        draw = rng.integers(0, self.n_archs, size=size, dtype=np.int64)
        return int(draw) if size is None else draw

    # -- encodings ---------------------------------------------------------------

    def _indices(self, archs: Any) -> np.ndarray:
        """Indices (int64 array) of one arch or a sequence/array of archs."""
        if isinstance(archs, np.ndarray) and np.issubdtype(archs.dtype, np.integer):
            out = archs.astype(np.int64).ravel()
            bad = (out < 0) | (out >= self.n_archs)
            if bad.any():
                self.index(int(out[np.argmax(bad)]))  # raises, naming the index
            return out
        single = isinstance(archs, (int, np.integer, str)) or (
            isinstance(archs, tuple) and len(archs) == 2 and isinstance(archs[1], (list, tuple))
        )
        if single:
            return np.array([self.index(archs)], dtype=np.int64)
        return np.fromiter((self.index(a) for a in archs), dtype=np.int64)

    def encode_categorical(self, archs: Any) -> np.ndarray:
        """The categorical code of each arch, ``int64 [n, 26]``; see the module docstring.

        ``archs`` is one arch or a sequence/array of archs.
        """
        idx = self._indices(archs)
        count = self._n[idx].astype(np.int64)
        bits = self._bits[idx].astype(np.int64)
        ops = self._ops[idx]
        out = np.zeros((idx.size, len(self.categorical_sizes)), dtype=np.int64)
        for n in range(2, MAX_VERTICES + 1):
            rows = np.flatnonzero(count == n)
            if rows.size == 0:
                continue
            slot = [*range(n - 1), MAX_VERTICES - 1]  # interior vertices first, output last
            k = 0
            for a in range(n):
                for b in range(a + 1, n):
                    out[rows, _PAIR_COLUMN[slot[a], slot[b]]] = (bits[rows] >> k) & 1
                    k += 1
            out[rows, _N_EDGE_VARS : _N_EDGE_VARS + n - 2] = ops[rows, : n - 2]
        return out

    def decode_categorical(self, codes: Any) -> np.ndarray:
        """Arch indices, ``int64 [n]``, of ``[n, 26]`` categorical codes; -1 where no arch.

        Each code's 7-vertex cell is pruned, checked (at most 9 edges, output
        reachable from input) and hashed. Values outside ``categorical_sizes``
        raise :class:`ArchError`.
        """
        codes = _check_codes(codes, self.categorical_sizes)
        rows, columns = np.triu_indices(MAX_VERTICES, k=1)  # row by row, as _SLOT_PAIRS
        out = np.full(codes.shape[0], -1, dtype=np.int64)
        for r, code in enumerate(codes):
            m = np.zeros((MAX_VERTICES, MAX_VERTICES), dtype=np.int64)
            m[rows, columns] = code[:_N_EDGE_VARS]
            ops = [INPUT] + [OPS[c] for c in code[_N_EDGE_VARS:].tolist()] + [OUTPUT]
            found = self._valid_index(m, ops)
            if found is not None:
                out[r] = found
        return out

    def encode_path(self, archs: Any) -> np.ndarray:
        """BANANAS' path encoding, ``float32 [n, 364]``; see the module docstring."""
        idx = self._indices(archs)
        out = np.zeros((idx.size, self.n_paths), dtype=np.float32)
        n_ops = len(OPS)
        for r, i in enumerate(idx.tolist()):
            ops = self._ops[i].tolist()
            for path in _interior_paths(int(self._n[i]), int(self._bits[i])):
                code = 0
                for v in path:
                    code = code * n_ops + ops[v - 1]
                out[r, _PATH_OFFSETS[len(path)] + code] = 1.0
        return out


@functools.cache
def _interior_paths(n: int, bits: int) -> tuple[tuple[int, ...], ...]:
    """The interior vertices of every input-to-output path of an ``n``-vertex cell."""
    succs: list[list[int]] = [[] for _ in range(n)]
    k = 0
    for a in range(n):
        for b in range(a + 1, n):
            if (bits >> k) & 1:
                succs[a].append(b)
            k += 1
    paths = []
    stack: list[tuple[int, tuple[int, ...]]] = [(0, ())]
    while stack:
        v, inner = stack.pop()
        for w in succs[v]:
            if w == n - 1:
                paths.append(inner)
            else:
                stack.append((w, (*inner, w)))
    return tuple(sorted(paths))


def _parse(text: str) -> tuple[np.ndarray, list[str]]:
    try:
        ops_text, rows_text = text.split(";")
        ops = [op.strip() for op in ops_text.split(",")]
        rows = [row.strip() for row in rows_text.split(",")]
        m = np.array([[int(c) for c in row] for row in rows], dtype=np.int64)
    except ValueError:
        raise ArchError(
            f"cannot parse NB101 cell {text!r}; expected 'input,conv3x3-bn-relu,output;010,001,000'"
        ) from None
    if m.ndim != 2 or m.shape != (len(ops), len(ops)):
        raise ArchError(f"NB101 cell {text!r}: {len(ops)} ops but a {m.shape} matrix")
    return m, ops


def _load_or_build() -> dict[str, np.ndarray]:
    path = _cache_path()
    if path.is_file():
        with np.load(path) as data:
            return {k: data[k] for k in ("hash", "n_vertices", "edge_bits", "ops")}
    arrays = _enumerate()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return arrays


@functools.cache
def nb101_space() -> NB101Space:
    """The cached NB101 space."""
    return NB101Space()
