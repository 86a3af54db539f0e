"""Random search: uniform sampling of the space until the budget is spent."""

from __future__ import annotations

from algorithms.base import Algorithm, Proposal


class RandomSearch(Algorithm):
    """Random search: architectures drawn uniformly from the space.

    Every proposal is an independent uniform draw over all architectures
    (isomorphic ones included, as in the NAS-Bench-201 and NATS-Bench
    reference scripts), trained to the table's last epoch. It is the baseline
    every other algorithm has to beat (Li & Talwalkar, 2019, "Random Search
    and Reproducibility for NAS").

    Parameters
    ----------
    seed
        Seed of the algorithm's own generator.
    """

    name = "random"

    def __init__(self, *, seed: int | None = None) -> None:
        self.seed = seed

    def ask(self) -> Proposal:
        return Proposal(arch=int(self.space.sample(self.rng)))
