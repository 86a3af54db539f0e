"""Multi-objective search of the accuracy/hardware-cost Pareto front (GSEMO)."""

from __future__ import annotations

import math

from algorithms._common import check_int, score
from algorithms._hardware import hardware_costs
from algorithms.base import Algorithm, Proposal


class ParetoSearch(Algorithm):
    """Pareto search: evolve the front of observed validation accuracy against hardware cost.

    A global simple evolutionary multi-objective optimiser (GSEMO; Laumanns,
    Thiele & Zitzler, 2004, IEEE TEC): after ``n_init`` uniform random
    architectures, each proposal mutates (``space.mutate``: on NB201 one
    edge, a different op; on NB101 one change of the cell) a
    parent drawn uniformly from the current front, retrying up to 20 times
    for an architecture not yet queried (isomorphic ones count as queried).
    The front holds every told architecture that no other told one dominates
    (higher or equal observed validation accuracy and lower or equal
    ``hw_metric`` cost, one of them strictly), the accuracy/cost trade-off of
    hardware-aware NAS (MnasNet's multi-objective view, Tan et al., 2019;
    HW-NAS-Bench, Li et al., 2021).

    The front is reported by :meth:`pareto_front` (and :meth:`report`):
    one entry per front member, sorted by cost, with its index, arch string,
    observed validation accuracy and cost; ``nasbench search`` adds each
    member's seed-mean validation and test accuracy from the table after the
    run. The trace's incumbent stays the best by validation accuracy.

    The hardware costs are not test data: the harness passes the table's
    per-architecture metrics to :meth:`setup` because this class sets
    ``uses_arch_metrics = True``.

    Parameters
    ----------
    hw_metric
        Per-architecture cost: ``"latency_ms"``, ``"flops"`` or ``"params"``.
    n_init
        Random architectures before the first mutation.
    seed
        Seed of the algorithm's own generator.
    """

    name = "hw-pareto"
    uses_arch_metrics = True

    def __init__(
        self, *, hw_metric: str = "latency_ms", n_init: int = 10, seed: int | None = None
    ) -> None:
        self.hw_metric = hw_metric
        self.n_init = n_init
        self.seed = seed

    def setup(self, space, fidelities, arch_metrics=None) -> None:
        super().setup(space, fidelities)
        self._costs = hardware_costs(self, space, arch_metrics, self.hw_metric)
        self._n_init = check_int(self, "n_init", 1)
        self._canonical = space.canonical_ids
        self._seen: set[int] = set()  # canonical ids queried or pending
        self._front: dict[int, tuple[int, float, float]] = {}  # canonical -> arch, acc, cost
        self._n_asked = 0

    def ask(self) -> Proposal:
        self._n_asked += 1
        if self._n_asked <= self._n_init or not self._front:
            arch = int(self.space.sample(self.rng))
        else:
            members = list(self._front.values())
            parent = members[int(self.rng.integers(len(members)))][0]
            for _ in range(20):
                arch = int(self.space.mutate(parent, self.rng))
                if int(self._canonical[arch]) not in self._seen:
                    break
        self._seen.add(int(self._canonical[arch]))
        return Proposal(arch=arch)

    def tell(self, proposal, result) -> None:
        arch = int(result.arch)
        acc = score(result.valid_acc)
        cost = float(self._costs[arch])
        if not math.isfinite(acc) or math.isnan(cost):
            return
        canonical = int(self._canonical[arch])
        if canonical in self._front:
            return  # the first observation of an architecture stands
        for _, other_acc, other_cost in self._front.values():
            if other_acc >= acc and other_cost <= cost and (other_acc > acc or other_cost < cost):
                return  # dominated
        dominated = [
            key
            for key, (_, other_acc, other_cost) in self._front.items()
            if acc >= other_acc and cost <= other_cost and (acc > other_acc or cost < other_cost)
        ]
        for key in dominated:
            del self._front[key]
        self._front[canonical] = (arch, acc, cost)

    def pareto_front(self) -> list[dict]:
        """The current front, sorted by cost (then by accuracy, descending)."""
        members = sorted(self._front.values(), key=lambda m: (m[2], -m[1], m[0]))
        return [
            {
                "arch": arch,
                "arch_string": self.space.to_string(arch),
                "valid_acc": acc,
                self.hw_metric: cost,
            }
            for arch, acc, cost in members
        ]

    def report(self) -> dict:
        """What the run found besides the trace: the accuracy/cost front."""
        return {"hw_metric": self.hw_metric, "pareto_front": self.pareto_front()}
