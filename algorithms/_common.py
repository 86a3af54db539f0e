"""Helpers shared by the algorithm modules: hyperparameter checks and scores."""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from nasbench_harness.errors import NasbenchError


def check_int(algorithm, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """Return hyperparameter ``name`` as an int, or raise a clear error."""
    value = getattr(algorithm, name)
    ok = isinstance(value, Integral) and not isinstance(value, bool)
    ok = ok and value >= minimum and (maximum is None or value <= maximum)
    if not ok:
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise NasbenchError(
            f"{algorithm.name}: {name}={value!r} is invalid; give a whole number >= {minimum}{upper}"
        )
    return int(value)


def check_float(
    algorithm,
    name: str,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return hyperparameter ``name`` as a float in the given interval, or raise."""
    value = getattr(algorithm, name)
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        v = float(value)
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise NasbenchError(
            f"{algorithm.name}: {name}={value!r} is invalid; give a number in {lo}{low}, {high}{hi}"
        )
    return float(value)


def check_choice(algorithm, name: str, choices: tuple) -> object:
    """Return hyperparameter ``name`` if it is one of ``choices``, or raise."""
    value = getattr(algorithm, name)
    if value not in choices:
        raise NasbenchError(
            f"{algorithm.name}: {name}={value!r} is invalid; choose one of {', '.join(map(repr, choices))}"
        )
    return value


def score(valid_acc: float) -> float:
    """A sortable score of an observed validation accuracy: NaN (missing) ranks last."""
    value = float(valid_acc)
    return value if not math.isnan(value) else -math.inf


def op_codes(space, indices) -> np.ndarray:
    """The categorical code of each arch, ``(n, d)`` int64 (``space.encode_categorical``).

    One column per variable of the space, with ``space.categorical_sizes[j]``
    choices: on NB201 the op of each edge, on NB101 the 21 edge bits and 5
    slot ops of the cell.
    """
    return space.encode_categorical(np.atleast_1d(np.asarray(indices, dtype=np.int64)))


def from_op_codes(space, codes) -> np.ndarray:
    """Inverse of :func:`op_codes`: arch indices, -1 where a code is no arch (NB101)."""
    return space.decode_categorical(np.atleast_2d(np.asarray(codes, dtype=np.int64)))


def uniform_codes(rng: np.random.Generator, sizes, shape: tuple[int, int]) -> np.ndarray:
    """Codes drawn uniformly per variable, ``shape = (n, len(sizes))`` int64.

    With equal sizes (NB201) this is one ``rng.integers(size, shape)`` draw,
    the same draws in the same order as a scalar bound gives.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    high = int(sizes[0]) if (sizes == sizes[0]).all() else sizes[None, :]
    return rng.integers(high, size=shape)
