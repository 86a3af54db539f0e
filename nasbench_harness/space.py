"""The NAS-Bench-201 cell search space.

A cell is a DAG of four nodes (0 = input, 3 = output). Each of the six edges
``i -> j`` (``i < j``) carries one op of :data:`OPS`; a node sums its incoming
edges. There are ``5 ** 6 = 15,625`` architectures.

Representations
---------------
arch
    A tuple of six op names in :data:`EDGES` order:
    ``(0->1, 0->2, 1->2, 0->3, 1->3, 2->3)``.
index
    ``sum_e OPS.index(op_e) * 5 ** (5 - e)``: the first edge is the most
    significant base-5 digit, so index 0 is all ``none`` and 15,624 is all
    ``avg_pool_3x3``.
string
    NAS-Bench-201's form ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (nodes 1, 2
    and 3; ``~i`` names the source node).

Canonical ids
-------------
Each arch has the id of the smallest index in its equivalence class.
:attr:`NB201Space.canonical_ids` uses the *exact* rule: two archs share an id
exactly when they compute the same function of the input with the same live
(trainable, gradient-receiving) parameters, in training mode (affine
BatchNorm on batch statistics) and in evaluation mode (running statistics).
The rule rewrites the cell output into a normal form:

* a node is a multiset (unordered sum) of terms; ``none`` adds nothing,
  ``skip_connect`` passes its input's terms, and a node with no terms is zero;
* ``avg_pool_3x3`` (stride 1, ``count_include_pad=False``) is linear, so it
  distributes over the terms: ``pool(a + b) == pool(a) + pool(b)``; pooling
  zero is zero and pooling a BN shift (constant over batch and space) leaves
  it unchanged;
* a ReLU-conv-BN edge on a zero input outputs its BN shift ``beta`` (batch
  mean and variance are 0), a parameter of that edge alone, whatever the
  kernel size (the conv weight and BN scale get no gradient and do not
  count); on any other input it is a parameterised term
  ``conv_k[edge](terms)``. A conv edge is its own parameter set, so one conv
  used twice (``2 * conv_a(x)``) differs from two convs
  (``conv_a(x) + conv_b(x)``);
* a 1x1 conv on a nonzero constant is *not* reduced to a shift: it equals
  ``beta`` on batch statistics but not on running statistics, so merging it
  would be wrong for evaluation-mode metrics;
* parameters that cannot reach the output are ignored.

The normal form is made canonical by labelling its parameterised terms in
every order consistent with their structure and keeping the smallest
serialisation. :meth:`NB201Space.canonical_ids_for` also gives the rules
listed in :data:`RULES`, among them NAS-Bench-201's own string rule
(``to_unique_str(consider_zero=True)``), which is :attr:`canonical_ids_nb201`.

Path encoding
-------------
:meth:`NB201Space.encode_path` has one binary feature per (path, op
sequence) for the four input-to-output paths ``0->3``, ``0->1->3``,
``0->2->3`` and ``0->1->2->3``, over the four ops other than ``none``
(paths through ``none`` carry nothing): ``4 + 16 + 16 + 64 = 100`` features,
ordered by path as listed, then by op sequence in base 4 (ops in
:data:`OPS` order without ``none``, first edge most significant). This is
BANANAS' path encoding with the path's shape kept in the feature.

Categorical encoding
--------------------
:meth:`NB201Space.encode_categorical` gives one categorical variable per
edge, the position of its op in :data:`OPS` (``categorical_sizes`` is
``(5,) * 6``): the base-5 digits of the index, first edge first.
:meth:`NB201Space.decode_categorical` inverts it; every code is an arch.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from nasbench_harness.errors import ArchError

__all__ = [
    "EDGES",
    "OPS",
    "PATHS",
    "RULES",
    "Arch",
    "NB201Space",
    "get_space",
]

OPS: tuple[str, ...] = (
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
)
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
PATHS: tuple[tuple[int, ...], ...] = ((3,), (0, 4), (1, 5), (0, 2, 5))
"""Input-to-output paths as edge positions: 0->3, 0->1->3, 0->2->3, 0->1->2->3."""

RULES: dict[str, str] = {
    "exact": "same function and same live parameters (affine BN, train and eval mode)",
    "exact_nonaffine": "as 'exact', but a conv on a zero input is zero (non-affine BN)",
    "nb201": "NAS-Bench-201's to_unique_str(consider_zero=True) string rule",
    "nb201_dropzero": (
        "NB201 string rule with zero terms dropped from sums and a conv on zero kept as "
        "'(#)@op'; not exact (no pool linearity, no parameter sharing)"
    ),
    "nb201_dropzero_nonaffine": "as 'nb201_dropzero', but a conv on zero is zero; not exact",
}
"""Equivalence rules known to :meth:`NB201Space.canonical_ids_for`."""

Arch = tuple[str, ...]
ArchLike = str | int | np.integer | Sequence[str]

_N_EDGES = len(EDGES)
_N_OPS = len(OPS)
_N_ARCHS = _N_OPS**_N_EDGES
_PLACE = tuple(_N_OPS ** (_N_EDGES - 1 - e) for e in range(_N_EDGES))
_OP_ID = {op: i for i, op in enumerate(OPS)}
_NONE, _SKIP, _CONV1, _CONV3, _POOL = range(_N_OPS)
_INPUTS = tuple(tuple(e for e, (_, t) in enumerate(EDGES) if t == node) for node in (1, 2, 3))
_EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"


# ----------------------------------------------------------------------------
# conversions


def _digits(index: int) -> tuple[int, ...]:
    return tuple((index // p) % _N_OPS for p in _PLACE)


def _string(ops: Sequence[str]) -> str:
    groups = []
    for edges in _INPUTS:
        groups.append("|" + "|".join(f"{ops[e]}~{EDGES[e][0]}" for e in edges) + "|")
    return "+".join(groups)


def _parse(text: str) -> Arch:
    """Parse an NB201 arch string, raising :class:`ArchError` naming what is wrong."""
    fix = f"write it like {_EXAMPLE!r} (node 1, node 2, node 3; '~i' names the source node)"
    groups = text.strip().split("+")
    if len(groups) != 3:
        raise ArchError(
            f"malformed arch string {text!r}: expected 3 node groups joined by '+', "
            f"got {len(groups)}; {fix}"
        )
    ops: list[str] = []
    for node, group in enumerate(groups, start=1):
        if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
            raise ArchError(
                f"malformed arch string {text!r}: node {node}'s group {group!r} must start "
                f"and end with '|'; {fix}"
            )
        items = group[1:-1].split("|")
        if len(items) != node:
            raise ArchError(
                f"malformed arch string {text!r}: node {node} must have {node} incoming "
                f"op(s) (one per earlier node), got {len(items)} in {group!r}; {fix}"
            )
        for source, item in enumerate(items):
            op, sep, src = item.partition("~")
            if not sep:
                raise ArchError(
                    f"malformed arch string {text!r}: {item!r} in node {node} lacks "
                    f"'~{source}' (op~source); {fix}"
                )
            if src != str(source):
                raise ArchError(
                    f"malformed arch string {text!r}: op {source + 1} of node {node} must "
                    f"read from node {source} ('~{source}'), got '~{src}'; {fix}"
                )
            if op not in _OP_ID:
                raise ArchError(
                    f"unknown op {op!r} in arch string {text!r} (node {node}, from node "
                    f"{source}); valid ops: {', '.join(OPS)}"
                )
            ops.append(op)
    order = [e for edges in _INPUTS for e in edges]  # string order -> EDGES order
    arch = [""] * _N_EDGES
    for position, e in enumerate(order):
        arch[e] = ops[position]
    return tuple(arch)


def _index_of_ops(ops: Sequence[Any]) -> int:
    if len(ops) != _N_EDGES:
        raise ArchError(
            f"arch {tuple(ops)!r} has {len(ops)} ops; an NB201 arch has exactly "
            f"{_N_EDGES}, one per edge in order {EDGES} (source, target)"
        )
    index = 0
    for e, op in enumerate(ops):
        op_id = _OP_ID.get(op) if isinstance(op, str) else None
        if op_id is None:
            raise ArchError(
                f"unknown op {op!r} at edge {e} {EDGES[e]} of arch {tuple(ops)!r}; "
                f"valid ops: {', '.join(OPS)}"
            )
        index += op_id * _PLACE[e]
    return index


def _range_error(index: Any) -> ArchError:
    return ArchError(
        f"arch index {index} is out of range; NB201 indices run from 0 to {_N_ARCHS - 1}"
    )


# ----------------------------------------------------------------------------
# equivalence rules
#
# Exact normal form: a node is a list of monomials (n_pool, base); base is _X
# for the cell input or the edge id of a parameterised term ("atom"). An atom
# is ("beta",) for a BN shift or (op_id, monomials) for ReLU-conv-BN on them.

_X = -1


def _exact_terms(arch: Sequence[int], affine: bool) -> tuple[list, dict]:
    atoms: dict[int, tuple] = {}
    nodes: list[list[tuple[int, int]]] = [[(0, _X)]]
    for edges in _INPUTS:
        terms: list[tuple[int, int]] = []
        for e in edges:
            op = arch[e]
            value = nodes[EDGES[e][0]]
            if op == _SKIP:
                terms.extend(value)
            elif op == _POOL:
                for n, base in value:
                    constant = base != _X and atoms[base][0] == "beta"
                    terms.append((n, base) if constant else (n + 1, base))
            elif op in (_CONV1, _CONV3):
                if value:
                    atoms[e] = (op, tuple(value))
                elif affine:
                    atoms[e] = ("beta",)
                else:
                    continue
                terms.append((0, e))
        nodes.append(terms)
    return nodes[3], atoms


def _exact_form(arch: Sequence[int], affine: bool = True) -> tuple[tuple, dict[int, int]]:
    """Canonical key of an arch (op ids) under the exact rule, and its atom labels.

    Returns ``(key, labels)``; ``labels`` maps each edge whose parameters are
    live to its parameterised term's label in ``key``. Two archs with equal
    keys are equivalent, and edges with the same label correspond (the
    equivalence test maps parameters with it).
    """
    out, atoms = _exact_terms(arch, affine)
    live: set[int] = set()
    stack = [base for _, base in out if base != _X]
    while stack:
        atom = stack.pop()
        if atom not in live:
            live.add(atom)
            if atoms[atom][0] != "beta":
                stack.extend(base for _, base in atoms[atom][1] if base != _X)

    signatures: dict[int, tuple] = {}

    def signature(atom: int) -> tuple:  # structure without identity
        if atom not in signatures:
            kind = atoms[atom]
            if kind[0] == "beta":
                signatures[atom] = (0,)
            else:
                inner = sorted((n, (_X,) if b == _X else signature(b)) for n, b in kind[1])
                signatures[atom] = (kind[0], tuple(inner))
        return signatures[atom]

    ordered = sorted(live, key=signature)
    groups = [list(g) for _, g in itertools.groupby(ordered, key=signature)]
    candidates = []
    for perm in itertools.product(*(itertools.permutations(g) for g in groups)):
        order = list(itertools.chain.from_iterable(perm))
        labels = {atom: i for i, atom in enumerate(order)}

        def serial(terms, labels=labels):
            return tuple(sorted((n, _X if b == _X else labels[b]) for n, b in terms))

        definitions = tuple(
            (0,) if atoms[a][0] == "beta" else (atoms[a][0], serial(atoms[a][1])) for a in order
        )
        candidates.append(((serial(out), definitions), labels))
    return min(candidates, key=lambda candidate: candidate[0])


def _nb201_key(arch: Sequence[int], drop_zero: bool, conv_on_zero: bool) -> str:
    """NB201's unique string (``drop_zero=False``) or its zero-dropping variants."""
    nodes = ["0"]
    for edges in _INPUTS:
        parts = []
        for e in edges:
            op, source = arch[e], nodes[EDGES[e][0]]
            if op == _NONE:
                term = "#"
            elif source == "#":
                term = f"(#)@{OPS[op]}" if conv_on_zero and op in (_CONV1, _CONV3) else "#"
            elif op == _SKIP:
                term = source
            else:
                term = f"({source})@{OPS[op]}"
            if term != "#" or not drop_zero:
                parts.append(term)
        nodes.append("+".join(sorted(parts)) if parts else "#")
    return nodes[3]


_RULE_KEYS = {
    "exact": lambda a: _exact_form(a, affine=True)[0],
    "exact_nonaffine": lambda a: _exact_form(a, affine=False)[0],
    "nb201": lambda a: _nb201_key(a, drop_zero=False, conv_on_zero=False),
    "nb201_dropzero": lambda a: _nb201_key(a, drop_zero=True, conv_on_zero=True),
    "nb201_dropzero_nonaffine": lambda a: _nb201_key(a, drop_zero=True, conv_on_zero=False),
}


def _representatives(key_fn) -> np.ndarray:
    first: dict[Any, int] = {}
    ids = np.empty(_N_ARCHS, dtype=np.int64)
    for index, arch in enumerate(itertools.product(range(_N_OPS), repeat=_N_EDGES)):
        ids[index] = first.setdefault(key_fn(arch), index)
    ids.flags.writeable = False
    return ids


# ----------------------------------------------------------------------------
# the space


class NB201Space:
    """The NAS-Bench-201 topology space: conversions, equivalence, moves, encodings.

    Use :func:`get_space` rather than constructing it: it is cached, and the
    tables it builds (about 1 s in all) are built once, when first used.
    """

    name = "nb201"
    ops: tuple[str, ...] = OPS
    edges: tuple[tuple[int, int], ...] = EDGES
    n_edges = _N_EDGES
    n_archs = _N_ARCHS
    n_onehot = _N_EDGES * _N_OPS
    n_paths = sum((_N_OPS - 1) ** len(p) for p in PATHS)
    #: Number of choices of each categorical variable (one per edge: its op).
    categorical_sizes: tuple[int, ...] = (_N_OPS,) * _N_EDGES

    def __init__(self) -> None:
        self._archs: list[Arch] = [tuple(OPS[d] for d in _digits(i)) for i in range(_N_ARCHS)]
        self._strings: list[str] = [_string(a) for a in self._archs]
        self._string_index: dict[str, int] = {s: i for i, s in enumerate(self._strings)}
        self._arch_index: dict[tuple, int] = {a: i for i, a in enumerate(self._archs)}
        digits = np.arange(_N_ARCHS)[:, None] // np.array(_PLACE)[None, :] % _N_OPS
        self._digits = digits.astype(np.int8)
        self._digits.flags.writeable = False
        self._rule_cache: dict[str, np.ndarray] = {}

    def __repr__(self) -> str:
        return f"NB201Space(n_archs={self.n_archs})"

    # -- conversions ---------------------------------------------------------

    def index(self, arch: ArchLike) -> int:
        """Index of an arch given as index, NB201 string or sequence of op names."""
        if type(arch) is int:  # hot path
            if 0 <= arch < _N_ARCHS:
                return arch
            raise _range_error(arch)
        if type(arch) is str:
            found = self._string_index.get(arch)
            if found is not None:
                return found
            return self._string_index[_string(_parse(arch))]
        if type(arch) is tuple:
            found = self._arch_index.get(arch)
            if found is not None:
                return found
        return self._index_slow(arch)

    def _index_slow(self, arch: Any) -> int:
        if isinstance(arch, (bool, np.bool_)):
            raise ArchError(f"arch {arch!r} is a bool; pass an index, string or op names")
        if isinstance(arch, (int, np.integer)):
            value = int(arch)
            if 0 <= value < _N_ARCHS:
                return value
            raise _range_error(value)
        if isinstance(arch, str):
            return self.index(str(arch))
        if isinstance(arch, np.ndarray) and arch.ndim == 0:
            return self.index(arch.item())
        if isinstance(arch, (tuple, list, np.ndarray)):
            return _index_of_ops(list(arch))
        raise ArchError(
            f"cannot read an arch from {arch!r} (type {type(arch).__name__}); pass an index "
            f"0..{_N_ARCHS - 1}, an NB201 string like {_EXAMPLE!r} or a tuple of "
            f"{_N_EDGES} op names"
        )

    def index_many(self, archs: Iterable[ArchLike] | np.ndarray) -> np.ndarray:
        """Indices (int64 array) of many archs; an integer array is checked at once."""
        if isinstance(archs, np.ndarray) and np.issubdtype(archs.dtype, np.integer):
            out = archs.astype(np.int64).ravel()
            bad = (out < 0) | (out >= _N_ARCHS)
            if bad.any():
                raise _range_error(int(out[np.argmax(bad)]))
            return out
        return np.fromiter((self.index(a) for a in archs), dtype=np.int64)

    def arch(self, arch: ArchLike) -> Arch:
        """The arch as a tuple of op names in :data:`EDGES` order."""
        return self._archs[self.index(arch)]

    def to_string(self, arch: ArchLike) -> str:
        """The arch as an NB201 string."""
        return self._strings[self.index(arch)]

    def parse(self, text: str) -> Arch:
        """Parse an NB201 string into a tuple of op names."""
        if not isinstance(text, str):
            raise ArchError(f"parse() takes an NB201 arch string, got {type(text).__name__}")
        return _parse(text)

    # -- equivalence ---------------------------------------------------------

    def canonical_ids_for(self, rule: str = "exact") -> np.ndarray:
        """Representative (smallest) index of every arch's class under ``rule``.

        ``rule`` is one of :data:`RULES`; the result is read-only and cached.
        """
        if rule not in _RULE_KEYS:
            raise ArchError(f"unknown equivalence rule {rule!r}; known: {', '.join(RULES)}")
        if rule not in self._rule_cache:
            self._rule_cache[rule] = _representatives(_RULE_KEYS[rule])
        return self._rule_cache[rule]

    @property
    def canonical_ids(self) -> np.ndarray:
        """Representative index of each arch under the exact rule."""
        return self.canonical_ids_for("exact")

    @property
    def canonical_ids_nb201(self) -> np.ndarray:
        """Representative index of each arch under NB201's own string rule."""
        return self.canonical_ids_for("nb201")

    def canonical(self, arch: ArchLike) -> int:
        """Representative index of the arch's exact class."""
        return int(self.canonical_ids[self.index(arch)])

    def canonical_nb201(self, arch: ArchLike) -> int:
        """Representative index of the arch's class under NB201's string rule."""
        return int(self.canonical_ids_nb201[self.index(arch)])

    @functools.cached_property
    def unique_indices(self) -> np.ndarray:
        """Sorted representatives of the exact classes."""
        out = np.unique(self.canonical_ids)
        out.flags.writeable = False
        return out

    @property
    def n_unique(self) -> int:
        """Number of exact classes."""
        return len(self.unique_indices)

    @functools.cached_property
    def n_unique_nb201(self) -> int:
        """Number of classes under NB201's string rule."""
        return len(np.unique(self.canonical_ids_nb201))

    # -- structure -----------------------------------------------------------

    @functools.cached_property
    def connected(self) -> np.ndarray:
        """Whether each arch has a path of non-``none`` edges from input to output."""
        live = self._digits != _NONE
        node1 = live[:, 0]
        node2 = live[:, 1] | (node1 & live[:, 2])
        out = live[:, 3] | (node1 & live[:, 4]) | (node2 & live[:, 5])
        out.flags.writeable = False
        return out

    def is_connected(self, arch: ArchLike) -> bool:
        """Whether the arch's output depends on its input."""
        return bool(self.connected[self.index(arch)])

    @functools.cached_property
    def neighbour_table(self) -> np.ndarray:
        """``(n_archs, 24)`` indices of the one-op changes, edge by edge, ops in order."""
        digits = self._digits.astype(np.int64)
        columns = []
        for e in range(_N_EDGES):
            for j in range(_N_OPS - 1):
                new_op = j + (j >= digits[:, e])
                columns.append((new_op - digits[:, e]) * _PLACE[e])
        table = np.arange(_N_ARCHS, dtype=np.int64)[:, None] + np.stack(columns, axis=1)
        table.flags.writeable = False
        return table

    def neighbours(self, arch: ArchLike) -> list[int]:
        """Indices of the 24 archs that differ from ``arch`` in exactly one edge."""
        return self.neighbour_table[self.index(arch)].tolist()

    def mutate(self, arch: ArchLike, rng: np.random.Generator) -> int:
        """A uniformly drawn one-op change of ``arch`` (one edge, a different op)."""
        row = self.neighbour_table[self.index(arch)]
        return int(row[_check_rng(rng).integers(len(row))])

    def sample(self, rng: np.random.Generator, size: int | None = None) -> int | np.ndarray:
        """Uniform random arch index (``size=None``) or int64 array of them."""
        draw = _check_rng(rng).integers(0, _N_ARCHS, size=size, dtype=np.int64)
        return int(draw) if size is None else draw

    # -- encodings -----------------------------------------------------------

    def _as_indices(self, archs: Any) -> np.ndarray:
        if isinstance(archs, (str, int, np.integer)) or _is_op_sequence(archs):
            return np.array([self.index(archs)], dtype=np.int64)
        return self.index_many(archs)

    def encode_onehot(self, archs: Any) -> np.ndarray:
        """One-hot op per edge, ``float32 [n, 30]`` (edge-major, ops in :data:`OPS` order).

        ``archs`` is one arch or a sequence/array of archs.
        """
        digits = self._digits[self._as_indices(archs)].astype(np.int64)
        out = np.zeros((len(digits), self.n_onehot), dtype=np.float32)
        rows = np.arange(len(digits))[:, None]
        out[rows, np.arange(_N_EDGES) * _N_OPS + digits] = 1.0
        return out

    def encode_categorical(self, archs: Any) -> np.ndarray:
        """The op of each edge (position in :data:`OPS`), ``int64 [n, 6]``.

        One categorical variable per edge, with ``categorical_sizes[e]``
        choices; ``archs`` is one arch or a sequence/array of archs.
        """
        return self._digits[self._as_indices(archs)].astype(np.int64)

    def decode_categorical(self, codes: Any) -> np.ndarray:
        """Arch indices, ``int64 [n]``, of ``[n, 6]`` codes from :meth:`encode_categorical`.

        Every code is an arch (no entry is -1, unlike in spaces with invalid
        codes). Codes outside ``0..4`` raise :class:`ArchError`.
        """
        codes = _check_codes(codes, self.categorical_sizes)
        return codes @ np.array(_PLACE, dtype=np.int64)

    def encode_path(self, archs: Any) -> np.ndarray:
        """Path encoding, ``float32 [n, 100]``; see the module docstring."""
        digits = self._digits[self._as_indices(archs)].astype(np.int64)
        out = np.zeros((len(digits), self.n_paths), dtype=np.float32)
        offset = 0
        for path in PATHS:
            ops = digits[:, list(path)]
            present = (ops != _NONE).all(axis=1)
            code = np.zeros(len(digits), dtype=np.int64)
            for column in range(len(path)):
                code = code * (_N_OPS - 1) + np.maximum(ops[:, column] - 1, 0)
            rows = np.flatnonzero(present)
            out[rows, offset + code[rows]] = 1.0
            offset += (_N_OPS - 1) ** len(path)
        return out


def _is_op_sequence(value: Any) -> bool:
    return (
        isinstance(value, (tuple, list))
        and len(value) == _N_EDGES
        and all(isinstance(v, str) and v in _OP_ID for v in value)
    )


def _check_codes(codes: Any, sizes: Sequence[int]) -> np.ndarray:
    """``codes`` as an int64 ``[n, len(sizes)]`` array, every value in ``0..sizes[j] - 1``."""
    arr = np.asarray(codes)
    if arr.ndim == 1:
        arr = arr[None, :]
    d = len(sizes)
    if arr.ndim != 2 or arr.shape[1] != d or (arr.size and arr.dtype.kind not in "iu"):
        raise ArchError(
            f"categorical codes must be an integer array of shape (n, {d}), one column per "
            f"variable, got {arr.dtype} {arr.shape}; make them with encode_categorical()"
        )
    arr = arr.astype(np.int64)
    bad = (arr < 0) | (arr >= np.asarray(sizes, dtype=np.int64)[None, :])
    if bad.any():
        row, column = (int(v) for v in np.argwhere(bad)[0])
        raise ArchError(
            f"categorical code {int(arr[row, column])} of variable {column} (row {row}) is out "
            f"of range; variable {column} takes 0..{sizes[column] - 1} (categorical_sizes)"
        )
    return arr


def _check_rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator, got {type(rng).__name__}; "
            "pass numpy.random.default_rng(seed)"
        )
    return rng


@functools.cache
def _cached_space(name: str) -> NB201Space:
    return NB201Space()


def get_space(name: str = "nb201") -> NB201Space:
    """The search space called ``name`` (``"nb201"`` or ``"nb101"``), built once and cached."""
    if isinstance(name, str) and name.lower() == "nb101":
        from nasbench_harness.space_nb101 import nb101_space

        return nb101_space()  # type: ignore[return-value]
    if not isinstance(name, str) or name.lower() != "nb201":
        raise ArchError(f"unknown search space {name!r}; available: nb201, nb101")
    return _cached_space("nb201")
