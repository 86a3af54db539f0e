"""Successive-halving brackets over the table's epochs, shared by sh, hb and bohb.

A bracket evaluates ``sizes[0]`` new architectures at ``epochs[0]``, keeps
the best ``sizes[1]`` (by observed validation accuracy) and evaluates them at
``epochs[1]``, and so on. A promoted architecture is trained again from
scratch to the higher epoch: the simulator charges the table's training time
from epoch 0, as retraining would (no checkpoint is resumed).

Several workers (asynchronous asks) are served as HpBandSter does: an ask
takes the next unassigned job of the oldest bracket that has one; when every
active bracket is waiting for results, a new bracket is opened. With one
worker this is exactly the sequential schedule. Each proposal carries
``info=(bracket_id, rung, slot)`` so that its result finds its bracket.
"""

from __future__ import annotations

import math

from algorithms._common import check_int, score
from algorithms.base import Algorithm, Proposal
from nasbench_harness.errors import NasbenchError


def rung_epochs(fidelities, eta: int, s: int, max_epoch: int, min_epoch: int) -> list[int]:
    """Epochs of the rungs of a bracket with ``s + 1`` rungs, snapped to the table's epochs.

    Rung ``i`` gets ``max_epoch * eta ** (i - s)`` rounded to the nearest
    available epoch in ``[min_epoch, max_epoch]`` (ties go up).
    """
    allowed = [e for e in fidelities if min_epoch <= e <= max_epoch]
    out = []
    for i in range(s + 1):
        target = max_epoch * float(eta) ** (i - s)
        out.append(min(allowed, key=lambda e: (abs(e - target), -e)))
    return out


class _Bracket:
    """State of one bracket: the archs of the current rung and their results."""

    __slots__ = ("ident", "epochs", "sizes", "rung", "archs", "next_slot", "results")

    def __init__(self, ident: int, epochs: list[int], sizes: list[int]) -> None:
        # rungs that snap to the same epoch would re-evaluate: keep the first of each epoch
        keep = [i for i in range(len(epochs)) if i == 0 or epochs[i] != epochs[i - 1]]
        self.ident = ident
        self.epochs = [epochs[i] for i in keep]
        self.sizes = [max(1, sizes[i]) for i in keep]
        self.rung = 0
        self.archs: list[int] = []
        self.next_slot = 0
        self.results: dict[int, float] = {}


class BracketSearch(Algorithm):
    """Base of the bracket-based multi-fidelity algorithms (not registered: no ``name``).

    Subclasses define :meth:`_bracket_plan` (rung epochs and sizes of the
    k-th bracket) and may override :meth:`_sample_new` and :meth:`_observe`.
    """

    multi_fidelity = True

    def __init__(
        self,
        *,
        eta: int = 3,
        min_epoch: int | None = None,
        max_epoch: int | None = None,
        seed: int | None = None,
    ) -> None:
        self.eta = eta
        self.min_epoch = min_epoch
        self.max_epoch = max_epoch
        self.seed = seed

    def setup(self, space, fidelities) -> None:
        super().setup(space, fidelities)
        self._eta = check_int(self, "eta", 2)
        first, last = self.fidelities[0], self.fidelities[-1]
        self._min_epoch = first if self.min_epoch is None else self.min_epoch
        self._max_epoch = last if self.max_epoch is None else self.max_epoch
        for name, value in (("min_epoch", self._min_epoch), ("max_epoch", self._max_epoch)):
            if value not in self.fidelities:
                raise NasbenchError(
                    f"{self.name}: {name}={value!r} is not an epoch of the table ({first}..{last})"
                )
        if self._min_epoch > self._max_epoch:
            raise NasbenchError(
                f"{self.name}: min_epoch={self._min_epoch} exceeds max_epoch={self._max_epoch}"
            )
        ratio = self._max_epoch / self._min_epoch
        self._s_max = int(math.floor(math.log(ratio) / math.log(self._eta) + 1e-9))
        self._canonical = space.canonical_ids
        self._active: list[_Bracket] = []
        self._by_id: dict[int, _Bracket] = {}
        self._n_brackets = 0

    # -- hooks ----------------------------------------------------------------
    def _bracket_plan(self, k: int) -> tuple[list[int], list[int]]:
        """Rung epochs and rung sizes of the k-th bracket (k = 0, 1, ...)."""
        raise NotImplementedError

    def _hyperband_plan(self, s: int, n: int) -> tuple[list[int], list[int]]:
        """Rungs of a bracket with ``s + 1`` rungs starting from ``n`` architectures."""
        epochs = rung_epochs(self.fidelities, self._eta, s, self._max_epoch, self._min_epoch)
        sizes = [int(n * float(self._eta) ** -i + 1e-9) for i in range(s + 1)]
        return epochs, sizes

    def _sample_new(self, bracket: _Bracket) -> int:
        """A new architecture for the first rung: uniform, not already in this bracket."""
        taken = {int(self._canonical[a]) for a in bracket.archs}
        for _ in range(100):
            arch = int(self.space.sample(self.rng))
            if int(self._canonical[arch]) not in taken:
                return arch
        return arch

    def _observe(self, arch: int, epoch: int, value: float) -> None:
        """Every told result (a model-based subclass records it)."""

    # -- ask / tell -----------------------------------------------------------
    def _next_job(self, bracket: _Bracket) -> Proposal | None:
        if bracket.next_slot >= bracket.sizes[bracket.rung]:
            return None
        slot = bracket.next_slot
        bracket.next_slot += 1
        if bracket.rung == 0:
            bracket.archs.append(self._sample_new(bracket))
        return Proposal(
            arch=bracket.archs[slot],
            epoch=bracket.epochs[bracket.rung],
            info=(bracket.ident, bracket.rung, slot),
        )

    def ask(self) -> Proposal:
        for bracket in self._active:
            job = self._next_job(bracket)
            if job is not None:
                return job
        epochs, sizes = self._bracket_plan(self._n_brackets)
        bracket = _Bracket(self._n_brackets, epochs, sizes)
        self._n_brackets += 1
        self._active.append(bracket)
        self._by_id[bracket.ident] = bracket
        return self._next_job(bracket)

    def tell(self, proposal: Proposal, result) -> None:
        value = score(result.valid_acc)
        self._observe(int(result.arch), int(result.epoch), value)
        ident, rung, slot = proposal.info
        bracket = self._by_id.get(ident)
        if bracket is None or rung != bracket.rung:
            return
        bracket.results[slot] = value
        if len(bracket.results) < bracket.sizes[rung]:
            return
        if rung + 1 == len(bracket.epochs):  # bracket finished
            self._active.remove(bracket)
            del self._by_id[ident]
            return
        order = sorted(bracket.results, key=lambda s: (-bracket.results[s], s))
        bracket.archs = [bracket.archs[s] for s in order[: bracket.sizes[rung + 1]]]
        bracket.rung += 1
        bracket.next_slot = 0
        bracket.results = {}
