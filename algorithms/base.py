"""The interface every search algorithm implements.

An algorithm is one small class: the constructor stores keyword arguments
and nothing else; :meth:`Algorithm.setup` validates them and prepares state;
:meth:`Algorithm.ask` proposes what to evaluate next; :meth:`Algorithm.tell`
receives the result. The harness (:mod:`nasbench_harness.simulator`) owns the
loop, the budget, the clock, the workers and the logging.
"""

from __future__ import annotations

import abc
import inspect
from typing import Any

import numpy as np

from nasbench_harness.errors import NasbenchError
from nasbench_harness.simulator import Proposal, Result

__all__ = ["Algorithm", "Proposal", "Result", "StoredParams"]


class StoredParams:
    """Hyperparameters as keyword-only constructor arguments, stored unchanged.

    Subclasses list their hyperparameters as keyword-only arguments of
    ``__init__`` and store each under the same attribute name (as
    scikit-learn estimators do); :meth:`get_params` reads them back.
    """

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]

    @classmethod
    def with_seed(cls, label: str, seed: int | None, params: dict[str, Any]):
        """``cls(seed=seed, **params)``, or a :class:`NasbenchError` naming (as ``label``)
        the unknown hyperparameters and the accepted ones."""
        accepted = cls._param_names()
        unknown = sorted(set(params) - set(accepted))
        if unknown or "seed" in params:
            bad = unknown or ["seed"]
            raise NasbenchError(
                f"{label}: unknown hyperparameter(s) {', '.join(bad)}; "
                f"accepted: {', '.join(p for p in accepted if p != 'seed')} "
                "(seed is given separately)"
            )
        return cls(seed=seed, **params)

    def get_params(self) -> dict[str, Any]:
        """The constructor's arguments, as stored."""
        return {name: getattr(self, name) for name in self._param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class Algorithm(StoredParams, abc.ABC):
    """Base class of search algorithms.

    Subclasses list their hyperparameters as keyword-only arguments of
    ``__init__`` and store each under the same attribute name, unchanged
    (as scikit-learn estimators do); :meth:`get_params` reads them back.
    Randomness comes only from ``self.rng``, made in :meth:`setup` from
    ``seed``.
    """

    #: Name used by the CLI (``nasbench search --algorithm NAME``).
    name: str = ""
    #: True when the algorithm proposes epochs below the last (multi-fidelity).
    multi_fidelity: bool = False

    def __init__(self, *, seed: int | None = None) -> None:
        self.seed = seed

    def setup(self, space, fidelities: tuple[int, ...]) -> None:
        """Called once before the first :meth:`ask`.

        Parameters
        ----------
        space
            The search space (:class:`~nasbench_harness.space.NB201Space` or
            :class:`~nasbench_harness.space_nb101.NB101Space`): ``sample``,
            ``mutate``, ``neighbours``, ``canonical_ids``, ``encode_path`` and
            the categorical encoding ``categorical_sizes`` /
            ``encode_categorical`` / ``decode_categorical``.
        fidelities
            Epochs at which the table can answer, ascending; the last is the
            full budget.
        """
        self.space = space
        self.fidelities = tuple(fidelities)
        self.rng = np.random.default_rng(self.seed)

    @abc.abstractmethod
    def ask(self) -> Proposal:
        """Return the next architecture (and epoch) to evaluate."""

    def tell(self, proposal: Proposal, result: Result) -> None:  # noqa: B027 - optional hook
        """Receive the result of a proposal; validation metrics and cost only."""
