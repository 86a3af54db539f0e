"""Hardware-aware regularized evolution with the MnasNet reward (Tan et al., 2019)."""

from __future__ import annotations

import math

import numpy as np

from algorithms._common import check_float, score
from algorithms._hardware import hardware_costs
from algorithms.regularized_evolution import RegularizedEvolution


class HardwareAwareEvolution(RegularizedEvolution):
    """Hardware-aware evolution: regularized evolution on the MnasNet accuracy/cost reward.

    Regularized evolution (``rea``) whose fitness is the MnasNet reward
    ``acc * (cost / target) ** w`` with ``w = alpha`` when ``cost <= target``
    and ``w = beta`` above it; ``acc`` is the observed validation accuracy
    and ``cost`` the architecture's ``hw_metric`` (``latency_ms``, ``flops``
    or ``params``) from the table (Tan et al., 2019, "MnasNet: Platform-Aware
    Neural Architecture Search for Mobile", CVPR). The defaults
    ``alpha=0, beta=-0.07`` leave architectures under the target unpenalised
    and penalise those above it; MnasNet's soft constraint is
    ``alpha = beta = -0.07``, its hard one ``alpha=0, beta=-1``. ``target``
    ``None`` means the median of ``hw_metric`` over the space's unique
    architectures. An architecture without a recorded cost ranks last.

    The hardware costs are not test data: the harness passes the table's
    per-architecture metrics to :meth:`setup` (``arch_metrics``) because
    this class sets ``uses_arch_metrics = True``. The trace's incumbent stays
    the best by validation accuracy (comparable with every other algorithm);
    :meth:`report` gives the best architecture by reward.

    Parameters
    ----------
    hw_metric
        Per-architecture cost: ``"latency_ms"``, ``"flops"`` or ``"params"``.
    target
        Cost target T; ``None`` = the median over unique architectures.
    alpha, beta
        Reward exponents at or below, and above, the target.
    population_size, sample_size
        As in regularized evolution (10 and 3).
    seed
        Seed of the algorithm's own generator.
    """

    name = "hw-rea"
    uses_arch_metrics = True

    def __init__(
        self,
        *,
        hw_metric: str = "latency_ms",
        target: float | None = None,
        alpha: float = 0.0,
        beta: float = -0.07,
        population_size: int = 10,
        sample_size: int = 3,
        seed: int | None = None,
    ) -> None:
        self.hw_metric = hw_metric
        self.target = target
        self.alpha = alpha
        self.beta = beta
        self.population_size = population_size
        self.sample_size = sample_size
        self.seed = seed

    def setup(self, space, fidelities, arch_metrics=None) -> None:
        super().setup(space, fidelities)
        self._costs = hardware_costs(self, space, arch_metrics, self.hw_metric)
        if self.target is None:
            unique = self._costs[np.unique(space.canonical_ids)]
            self._target = float(np.nanmedian(unique))
        else:
            self._target = check_float(self, "target", 0.0, low_open=True)
        self._alpha = check_float(self, "alpha")
        self._beta = check_float(self, "beta")
        self._best: tuple[float, int, float] | None = None  # reward, arch, valid_acc

    def reward(self, arch: int, valid_acc: float) -> float:
        """The MnasNet reward of an architecture with an observed validation accuracy."""
        cost = float(self._costs[int(arch)])
        acc = score(valid_acc)
        if math.isnan(cost) or cost <= 0 or not math.isfinite(acc):
            return -math.inf
        w = self._alpha if cost <= self._target else self._beta
        return acc * (cost / self._target) ** w

    def tell(self, proposal, result) -> None:
        value = self.reward(result.arch, result.valid_acc)
        self._population.append((int(result.arch), value))
        while len(self._population) > self._population_size:
            self._population.popleft()
        if self._best is None or value > self._best[0]:
            self._best = (value, int(result.arch), float(result.valid_acc))

    def report(self) -> dict:
        """The best architecture by reward among the told results."""
        out = {"hw_metric": self.hw_metric, "target": self._target, "best_by_reward": None}
        if self._best is not None:
            value, arch, valid = self._best
            out["best_by_reward"] = {
                "arch": arch,
                "arch_string": self.space.to_string(arch),
                "valid_acc": valid,
                self.hw_metric: float(self._costs[arch]),
                "reward": value,
            }
        return out
