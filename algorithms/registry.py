"""Discovery of search algorithms by name, and the default search budget.

Every module of the :mod:`algorithms` package (except ``base``, ``registry``
and private ``_*`` modules) is imported, and each :class:`~algorithms.base.Algorithm`
subclass *defined in it* with a non-empty ``name`` is registered under that
name. A user's own algorithm is named ``path/to/file.py:ClassName`` (or just
``path/to/file.py`` when the file defines exactly one algorithm).

The weight-sharing methods (``darts``, ``gdas``, ``rsps``) are not
algorithms of this interface: they train a supernet in real time instead of
querying the table in simulated time. :func:`list_weight_sharing` names them
(``nasbench search`` runs them through :mod:`nasbench_harness.oneshot`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import json
import pkgutil
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import algorithms
from algorithms.base import Algorithm
from nasbench_harness.errors import NasbenchError

__all__ = [
    "code_fingerprint",
    "default_budget",
    "get_algorithm_class",
    "list_algorithms",
    "list_weight_sharing",
    "make_algorithm",
    "parse_param_strings",
]

_SKIP_MODULES = frozenset({"base", "registry"})
#: Full trainings that the default budget pays for (see :func:`default_budget`).
DEFAULT_FULL_TRAININGS = 200

_registry: dict[str, type[Algorithm]] | None = None
_import_errors: dict[str, str] = {}


def _algorithm_classes(module) -> list[type[Algorithm]]:
    """The concrete Algorithm subclasses defined (not imported) in ``module``."""
    found = []
    for _, obj in inspect.getmembers(module, inspect.isclass):
        if (
            issubclass(obj, Algorithm)
            and obj is not Algorithm
            and obj.__module__ == module.__name__
            and not inspect.isabstract(obj)
        ):
            found.append(obj)
    return found


def _discover() -> dict[str, type[Algorithm]]:
    global _registry
    if _registry is not None:
        return _registry
    registry: dict[str, type[Algorithm]] = {}
    for info in sorted(pkgutil.iter_modules(algorithms.__path__), key=lambda i: i.name):
        if info.name in _SKIP_MODULES or info.name.startswith("_"):
            continue
        module_name = f"algorithms.{info.name}"
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # a broken drop-in file must not hide the others
            _import_errors[module_name] = f"{type(exc).__name__}: {exc}"
            continue
        for cls in _algorithm_classes(module):
            if not cls.name:
                continue
            other = registry.get(cls.name)
            if other is not None and other is not cls:
                raise NasbenchError(
                    f"two algorithms are named {cls.name!r}: {other.__module__}.{other.__qualname__} "
                    f"and {cls.__module__}.{cls.__qualname__}; rename one (class attribute `name`)"
                )
            registry[cls.name] = cls
    _registry = dict(sorted(registry.items()))
    return _registry


def _load_from_file(spec: str) -> type[Algorithm]:
    path_text, _, class_name = spec.partition(":")
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise NasbenchError(
            f"algorithm file {path_text!r} does not exist; give path/to/file.py:ClassName "
            "or a registered name (see `nasbench search --list`)"
        )
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    module_name = f"_nasbench_user_algorithm_{resolved.stem}_{digest}"
    module = sys.modules.get(module_name)
    if module is None:
        module_spec = importlib.util.spec_from_file_location(module_name, resolved)
        if module_spec is None or module_spec.loader is None:
            raise NasbenchError(
                f"cannot import {path_text!r} as a Python module; is it a .py file?"
            )
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise NasbenchError(
                f"importing algorithm file {path_text!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
    candidates = _algorithm_classes(module)
    if class_name:
        cls = getattr(module, class_name, None)
        if cls is None:
            names = ", ".join(c.__name__ for c in candidates) or "none"
            raise NasbenchError(
                f"{path_text!r} has no class {class_name!r}; Algorithm subclasses there: {names}"
            )
        if not (inspect.isclass(cls) and issubclass(cls, Algorithm)):
            raise NasbenchError(
                f"{path_text}:{class_name} is not a subclass of algorithms.base.Algorithm; "
                "derive from it and implement ask() (and tell())"
            )
        if inspect.isabstract(cls):
            raise NasbenchError(f"{path_text}:{class_name} is abstract; implement ask()")
        return cls
    if len(candidates) != 1:
        names = ", ".join(c.__name__ for c in candidates) or "none"
        raise NasbenchError(
            f"{path_text!r} defines {len(candidates)} Algorithm subclasses ({names}); "
            "name one as path/to/file.py:ClassName"
        )
    return candidates[0]


def get_algorithm_class(name_or_path: str) -> type[Algorithm]:
    """Return the algorithm class registered as ``name_or_path``, or loaded from a file.

    Parameters
    ----------
    name_or_path
        A registered name (``rea``) or ``path/to/file.py:ClassName``.
    """
    if not isinstance(name_or_path, str) or not name_or_path:
        raise NasbenchError(f"algorithm {name_or_path!r}: give a name or path/to/file.py:ClassName")
    registry = _discover()
    if name_or_path in registry:
        return registry[name_or_path]
    if ".py" in name_or_path or "/" in name_or_path or ":" in name_or_path:
        return _load_from_file(name_or_path)
    if name_or_path in list_weight_sharing():
        raise NasbenchError(
            f"{name_or_path!r} is a weight-sharing method: it trains a supernet in real time and "
            f"does not run in simulated time; use `nasbench search --algorithm {name_or_path}`"
        )
    known = ", ".join(registry)
    message = (
        f"unknown algorithm {name_or_path!r}; known: {known} (and the weight-sharing "
        f"{', '.join(list_weight_sharing())}, with `nasbench search` only); "
        "or give path/to/file.py:ClassName for your own"
    )
    if _import_errors:
        broken = "; ".join(f"{m} ({e})" for m, e in _import_errors.items())
        message += f" (modules that failed to import: {broken})"
    raise NasbenchError(message)


def import_errors() -> dict[str, str]:
    """Modules of the :mod:`algorithms` package that failed to import, with their errors."""
    _discover()
    return dict(_import_errors)


def list_algorithms() -> dict[str, str]:
    """Registered names with the first line of each class docstring."""
    out = {}
    for name, cls in _discover().items():
        doc = inspect.getdoc(cls) or ""
        out[name] = doc.strip().splitlines()[0] if doc.strip() else cls.__name__
    return out


def list_weight_sharing() -> dict[str, str]:
    """Weight-sharing methods (real-time supernet training) with a one-line description."""
    from nasbench_harness.oneshot.search import list_methods

    return {
        name: f"[weight-sharing, real wall-clock time] {description}"
        for name, description in list_methods().items()
    }


def make_algorithm(name: str, seed: int | None = None, **hyperparameters: Any) -> Algorithm:
    """Instantiate an algorithm by name (or file path) with a seed and hyperparameters."""
    return get_algorithm_class(name).with_seed(name, seed, hyperparameters)


def code_fingerprint(name_or_path: str) -> str:
    """A hash of the code a search with this algorithm runs: 16 hex digits.

    It covers every module of the :mod:`algorithms` package (shared helpers
    and parent classes included), the simulator, the search spaces, the
    table reader and schema, and the file that defines the algorithm's class
    when that lies outside the package (a user's own algorithm; modules that
    file imports are not covered: after changing only those, give compare a
    new ``--out``). ``nasbench compare`` keys its runs with it, so that
    results of other code are never resumed as if they were this code's.
    """
    shared = _shared_code()
    files = [(path.name, data) for path, data in shared]
    own = inspect.getsourcefile(get_algorithm_class(name_or_path))
    if own is not None and Path(own).resolve() not in {path for path, _ in shared}:
        files.append((Path(own).name, Path(own).read_bytes()))  # read afresh: a user's file
    digest = hashlib.sha256()
    for name, data in files:
        digest.update(name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def _shared_code() -> tuple[tuple[Path, bytes], ...]:
    """The files every algorithm's fingerprint covers, read once per process."""
    import nasbench_harness

    harness = Path(nasbench_harness.__file__).parent
    files = sorted(p.resolve() for d in algorithms.__path__ for p in Path(d).glob("*.py"))
    files += [harness / "simulator.py", harness / "space.py", harness / "space_nb101.py"]
    # what a table answers: its offered fidelities (schema.NotRecorded) and rows (reader)
    files += [harness / "table" / "schema.py", harness / "table" / "reader.py"]
    return tuple((path, path.read_bytes()) for path in files)


def parse_param_strings(items: list[str] | None) -> dict[str, Any]:
    """Turn ``["key=value", ...]`` into a dict; values are read as JSON, else kept as text."""
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise NasbenchError(
                f"--param {item!r}: write key=value, e.g. --param population_size=20"
            )
        if key == "seed":
            raise NasbenchError(
                f"--param {item!r}: the seed is not a hyperparameter; give it with --seed "
                "(nasbench compare runs seeds 0..N-1 of --runs)"
            )
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        params[key] = value
    return params


def default_budget(table, n_full_trainings: int = DEFAULT_FULL_TRAININGS) -> float:
    """Default simulated budget of a search on ``table``, in seconds.

    The time to train ``n_full_trainings`` (200) typical architectures to the
    table's last epoch: the median over the table's unique architectures of
    the seed-mean cumulative ``train_time_s`` at the last epoch, times 200.
    It scales with the table's own recorded times, so the same default means
    the same amount of search on a fast and on a slow table; 200 full
    trainings are enough for the tabular baselines to separate from random
    search and stay far from exhausting a 15,625-arch space.
    """
    rows = np.unique(np.asarray(table.canonical))
    times = np.asarray(table.array("train_time_s"), dtype=np.float64)[rows]
    full = times.sum(axis=2)  # NaN where any epoch is missing: never filled in
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: missing, stay NaN
        per_arch = np.nanmean(full, axis=1)
        median = float(np.nanmedian(per_arch))
    if not np.isfinite(median) or median <= 0:
        raise NasbenchError(
            "the table has no complete training times (train_time_s) to derive a default budget; "
            "give --budget SEC"
        )
    return median * int(n_full_trainings)
