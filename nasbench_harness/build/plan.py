"""Build settings, the plan of (arch, seed) tasks, shards and the build directory.

A build is fixed by its :class:`BuildSettings` (space, dataset and split,
recipe, seeds, limit, arch order, trainer). The settings are saved as
``OUT/build.json`` on the first run; every later run (a resume, another
shard) must bring the same settings, so that all rows of a directory belong to
one table. Executors, worker counts, devices and shards are not settings:
they change how a build runs, not what it computes.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasbench_harness.build.defaults import (
    DEFAULT_ORDER_SEED,
    DEFAULT_RECIPE,
    DEFAULT_SEEDS,
    TAIL_PER_WORKER,
)
from nasbench_harness.errors import BuildError

#: Version of the settings layout in ``build.json``.
SETTINGS_VERSION = 1

#: Trainers a build can name: the real recipe, or the fast deterministic stand-in (dry runs).
TRAINERS = ("train_arch", "fake")
#: Spaces whose cells the builder's models (and the fake trainer) can build.
TRAINABLE_SPACES = ("nb201",)

SETTINGS_FILE = "build.json"
ROWS_DIR = "rows"
SHARDS_DIR = "shards"


@dataclass(frozen=True, order=True)
class Task:
    """One unit of work: train canonical arch ``arch`` (an index) with training seed ``seed``."""

    arch: int
    seed: int


@dataclass(frozen=True)
class BuildSettings:
    """Everything that decides the values of a table (see the module docstring).

    Build them with :func:`make_settings`, which fills and checks the recipe.

    Parameters
    ----------
    space : str
        Search space name (:func:`nasbench_harness.space.get_space`).
    recipe : Mapping[str, Any]
        Every field of the training recipe, data set and split included, as
        :meth:`nasbench_harness.train.Recipe.to_dict` writes it.
    seeds : tuple[int, ...]
        Training seeds; every arch is trained once per seed.
    limit : int or None
        Train only the first ``limit`` distinct archs of the shuffled order (a fair sample).
    order_seed : int
        Seed of the shuffled arch order.
    trainer : str
        ``"train_arch"`` (the recipe) or ``"fake"`` (deterministic synthetic curves, a dry run).
    """

    space: str
    recipe: Mapping[str, Any]
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    limit: int | None = None
    order_seed: int = DEFAULT_ORDER_SEED
    trainer: str = "train_arch"

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        object.__setattr__(self, "recipe", dict(self.recipe))
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise BuildError(
                f"seeds {list(self.seeds)!r}: give one or more distinct non-negative integers, "
                "e.g. --seeds 0,1"
            )
        if self.limit is not None and (int(self.limit) != self.limit or self.limit < 1):
            raise BuildError(f"limit {self.limit!r}: give a positive number of archs, or no limit")
        if self.trainer not in TRAINERS:
            raise BuildError(f"trainer {self.trainer!r}: use one of {', '.join(TRAINERS)}")
        epochs = self.recipe.get("epochs")
        if not isinstance(epochs, int) or epochs < 1:
            raise BuildError(f"recipe epochs {epochs!r}: give a positive integer, e.g. --epochs 3")

    @property
    def epochs(self) -> int:
        return int(self.recipe["epochs"])

    @property
    def dataset(self) -> str:
        return str(self.recipe["dataset"])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the content of ``build.json``)."""
        return {
            "version": SETTINGS_VERSION,
            "space": self.space,
            "recipe": dict(self.recipe),
            "seeds": list(self.seeds),
            "limit": self.limit,
            "order_seed": self.order_seed,
            "trainer": self.trainer,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BuildSettings:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, Mapping):
            raise BuildError(f"build settings must be a JSON object, not {type(data).__name__}")
        if data.get("version") != SETTINGS_VERSION:
            raise BuildError(
                f"build settings of version {data.get('version')!r}; this nasbench-harness reads "
                f"version {SETTINGS_VERSION}: use the nasbench-harness release that wrote them"
            )
        return cls(
            space=data["space"],
            recipe=data["recipe"],
            seeds=tuple(data["seeds"]),
            limit=data["limit"],
            order_seed=data["order_seed"],
            trainer=data["trainer"],
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2)

    @property
    def fingerprint(self) -> str:
        """Short hash of the settings; every row file of the build carries it."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def make_settings(
    *,
    space: str = "nb201",
    seeds: Sequence[int] | str = DEFAULT_SEEDS,
    limit: int | None = None,
    order_seed: int = DEFAULT_ORDER_SEED,
    trainer: str = "train_arch",
    recipe: Mapping[str, Any] | None = None,
    **changes: Any,
) -> BuildSettings:
    """Settings from the defaults of the shipped table, changed where asked.

    ``recipe`` replaces :data:`~nasbench_harness.build.defaults.DEFAULT_RECIPE`
    as the base; ``changes`` are recipe fields on top (``epochs=3``,
    ``train_size=400``, ...). The recipe is checked and completed by
    :class:`nasbench_harness.train.Recipe`. Another ``dataset`` on the default
    base drops the shipped split sizes (they fit MNIST-1D only): the data
    set's own sizes apply unless given, as with ``nasbench build --dataset``.
    """
    from nasbench_harness.space import get_space
    from nasbench_harness.train import Recipe

    get_space(space)  # an unknown space fails here, with the space's own message
    if space not in TRAINABLE_SPACES:
        raise BuildError(
            f"space {space!r}: the builder trains the cells of {', '.join(TRAINABLE_SPACES)} "
            f"only (its models); tables of {space} come from `nasbench import`"
        )
    base = dict(DEFAULT_RECIPE if recipe is None else recipe)
    if recipe is None and changes.get("dataset", base["dataset"]) != base["dataset"]:
        for field in ("train_size", "valid_size", "test_size"):
            base.pop(field, None)
    full = Recipe.from_dict({**base, **changes})
    return BuildSettings(
        space=space,
        recipe=full.to_dict(),
        seeds=parse_seeds(seeds),
        limit=limit,
        order_seed=order_seed,
        trainer=trainer,
    )


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based): the tasks at plan positions p with p % count == index."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Parse ``"i/N"`` (e.g. ``"0/4"``; ``i`` is 0-based, as SLURM_ARRAY_TASK_ID usually is)."""
        try:
            index_text, count_text = text.split("/")
            shard = cls(int(index_text), int(count_text))
        except ValueError:
            raise BuildError(
                f"shard {text!r}: write it as i/N with 0 <= i < N, e.g. --shard 0/4"
            ) from None
        if not 0 <= shard.index < shard.count:
            raise BuildError(
                f"shard {text!r}: i must satisfy 0 <= i < N, e.g. --shard 0/{shard.count}"
            )
        return shard

    @property
    def tag(self) -> str:
        """Name part of this shard's part files."""
        return f"{self.index}of{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def arch_order(settings: BuildSettings) -> np.ndarray:
    """The build's distinct (canonical) archs in their fixed shuffled order, ``limit`` applied."""
    from nasbench_harness.space import get_space

    space = get_space(settings.space)
    rng = np.random.default_rng(settings.order_seed)
    order = rng.permutation(np.asarray(space.unique_indices, dtype=np.int64))
    if settings.limit is not None:
        order = order[: settings.limit]
    return order


def plan_tasks(settings: BuildSettings, shard: Shard | None = None) -> list[Task]:
    """The build's tasks, arch by arch in the shuffled order, every seed of an arch together.

    Arch-major order means a build stopped early holds a uniform random sample
    of archs with all their seeds, so its noise ceiling (seed vs seed) can be
    measured on the way. With ``shard``, only the archs at positions ``p`` of
    the order with ``p % shard.count == shard.index`` are returned, each with
    all its seeds, so that a sharded build whose other shards have not run
    yet has both seeds of its archs too.
    """
    order = arch_order(settings)
    if shard is not None:
        order = order[shard.index :: shard.count]
    return [Task(int(arch), seed) for arch in order for seed in settings.seeds]


#: Training time of one live op in every cell, relative to the rest of the network (stem,
#: reductions, classifier: 1). Fitted on the shipped build's rows (CPU, 8 channels), where
#: per-op overhead dominates, so that a 1x1 conv costs about what a 3x3 conv does. Only
#: the dispatch order of a build's last tasks uses it.
NB201_OP_COST = {
    "none": 0.0,
    "skip_connect": 0.2,
    "nor_conv_1x1": 3.3,
    "nor_conv_3x3": 3.8,
    "avg_pool_3x3": 1.6,
}


def expected_cost(space: str, arch: int) -> float | None:
    """Rough relative training time of canonical arch ``arch`` of ``space`` (None: unknown).

    For NB201: 1 plus :data:`NB201_OP_COST` of every op on a live edge
    (:func:`nasbench_harness.models.live_edges`; the model drops the others).
    """
    if space != "nb201":
        return None
    from nasbench_harness.models import live_edges
    from nasbench_harness.space import get_space

    ops = get_space(space).arch(arch)
    return 1.0 + sum(NB201_OP_COST[op] for op, live in zip(ops, live_edges(ops)) if live)


def dispatch_order(tasks: Sequence[Task], space: str, workers: int) -> list[Task]:
    """``tasks`` in plan order, but for the last ``TAIL_PER_WORKER * workers``: longest first.

    A build lasts until its slowest worker is done; when the last tasks are
    the shortest, the workers finish nearly together instead of one waiting
    for another's long task. Only the tail moves, and the seeds of an arch
    stay together, so a build stopped before its tail still holds the uniform
    random sample of archs that :func:`plan_tasks` promises. Tasks of a space
    without :func:`expected_cost` keep their order.
    """
    tasks = list(tasks)
    n_tail = min(len(tasks), TAIL_PER_WORKER * max(1, int(workers)))
    while n_tail < len(tasks) and tasks[-n_tail - 1].arch == tasks[-n_tail].arch:
        n_tail += 1  # start the tail at an arch's first seed
    if n_tail < 2 or expected_cost(space, tasks[-1].arch) is None:
        return tasks
    head, tail = tasks[:-n_tail], tasks[-n_tail:]
    cost = {task.arch: expected_cost(space, task.arch) for task in tail}
    return head + sorted(tail, key=lambda task: -cost[task.arch])  # stable: seeds stay together


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def settings_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable ``key: old -> new`` lines for settings dicts that differ."""
    a, b = _flatten(old), _flatten(new)
    missing = object()
    return [
        f"{key}: {a.get(key, missing)!r} -> {b.get(key, missing)!r}".replace(repr(missing), "unset")
        for key in sorted(set(a) | set(b))
        if a.get(key, missing) != b.get(key, missing)
    ]


def init_build_dir(out: str | os.PathLike, settings: BuildSettings) -> Path:
    """Create the build directory (or check an existing one) and return its path.

    The first run writes ``build.json`` (exclusively, so concurrent shard jobs
    agree); a later run with other settings is refused with the differing keys.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BuildError(f"--out {out}: is a file; give a directory for the build")
    (out / ROWS_DIR).mkdir(parents=True, exist_ok=True)
    (out / SHARDS_DIR).mkdir(parents=True, exist_ok=True)
    path = out / SETTINGS_FILE
    if not path.exists():
        tmp = path.with_name(f"{SETTINGS_FILE}.{socket.gethostname()}.{os.getpid()}.tmp")
        tmp.write_text(settings.to_json() + "\n")
        try:
            os.link(tmp, path)  # fails if another job created it first: then compare below
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    saved = read_settings_file(path)
    if saved.fingerprint != settings.fingerprint:
        changes = "; ".join(settings_differences(saved.to_dict(), settings.to_dict()))
        raise BuildError(
            f"{out} holds a build with other settings ({changes}); rerun with the settings saved "
            f"in {path} to resume it, or give a new --out for a new build"
        )
    return out


def read_settings_file(path: str | os.PathLike) -> BuildSettings:
    """Read ``build.json``; a broken file is a :class:`BuildError` naming it."""
    path = Path(path)
    try:
        return BuildSettings.from_dict(json.loads(path.read_text()))
    except BuildError as exc:  # readable, but not settings this version can use
        raise BuildError(f"{path}: {exc}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BuildError(
            f"{path}: unreadable build settings ({exc}); restore it from a part file of the build "
            "or start a new build with a new --out"
        ) from None


def read_build_dir_settings(out: str | os.PathLike) -> BuildSettings | None:
    """Settings saved in a build directory, or None if it has no ``build.json``."""
    path = Path(out) / SETTINGS_FILE
    return read_settings_file(path) if path.exists() else None


def parse_seeds(values: Sequence[int] | str) -> tuple[int, ...]:
    """Seeds from ``"0,1"`` or a sequence of ints."""
    if isinstance(values, str):
        try:
            return tuple(int(v) for v in values.split(",") if v.strip())
        except ValueError:
            raise BuildError(f"seeds {values!r}: write them comma-separated, e.g. 0,1") from None
    return tuple(int(v) for v in values)
