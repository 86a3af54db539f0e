"""Regularized (aging) evolution (Real et al., 2019)."""

from __future__ import annotations

from collections import deque

from algorithms._common import check_int, score
from algorithms.base import Algorithm, Proposal


class RegularizedEvolution(Algorithm):
    """Regularized evolution: tournament selection, one-edge mutation, oldest dies.

    The first ``population_size`` proposals are uniform random architectures.
    After that each proposal mutates the best (by observed validation
    accuracy) of ``sample_size`` members drawn uniformly with replacement
    from the population, as in Real et al.'s Algorithm 1 and the NATS-Bench
    code (a member can be drawn twice, so the best of P = 10 wins a
    tournament of S = 3 with probability 1 - 0.9^3 = 0.271):
    ``space.mutate``, on NB201 one edge getting a different op,
    on NB101 one change of the cell (an edge flipped, an interior op
    replaced or a vertex put on an edge). Every told result joins the
    population and the oldest member leaves once it exceeds
    ``population_size`` (Real et al., 2019, "Regularized Evolution for Image
    Classifier Architecture Search", AAAI).

    Defaults follow the NATS-Bench reference (``population_size=10``,
    ``sample_size=3``); other references use 50/10 (NASLib), 30/10
    (naszilla) and 100/10 (Syne Tune).

    With several workers, asks that arrive before enough results are told
    are answered with random architectures (while the population is empty)
    or a tournament over the smaller population seen so far.

    Parameters
    ----------
    population_size
        Members kept alive (P).
    sample_size
        Tournament size (S), at most ``population_size``.
    seed
        Seed of the algorithm's own generator.
    """

    name = "rea"

    def __init__(
        self, *, population_size: int = 10, sample_size: int = 3, seed: int | None = None
    ) -> None:
        self.population_size = population_size
        self.sample_size = sample_size
        self.seed = seed

    def setup(self, space, fidelities) -> None:
        super().setup(space, fidelities)
        self._population_size = check_int(self, "population_size", 1)
        self._sample_size = check_int(self, "sample_size", 1, self._population_size)
        self._population: deque[tuple[int, float]] = deque()
        self._n_asked = 0

    def ask(self) -> Proposal:
        self._n_asked += 1
        if self._n_asked <= self._population_size or not self._population:
            return Proposal(arch=int(self.space.sample(self.rng)))
        picks = self.rng.integers(len(self._population), size=self._sample_size)
        parent = max((self._population[i] for i in picks), key=lambda member: member[1])
        return Proposal(arch=int(self.space.mutate(parent[0], self.rng)))

    def tell(self, proposal: Proposal, result) -> None:
        self._population.append((int(result.arch), score(result.valid_acc)))
        while len(self._population) > self._population_size:
            self._population.popleft()
