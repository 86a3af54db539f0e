"""Successive halving over the table's epochs (Jamieson & Talwalkar, 2016)."""

from __future__ import annotations

from algorithms._brackets import BracketSearch
from algorithms._common import check_int


class SuccessiveHalving(BracketSearch):
    """Successive halving: many architectures at few epochs, the best 1/eta move up.

    Repeats one successive-halving bracket until the budget is spent. A
    bracket starts ``n_initial`` random architectures at the smallest
    fidelity and keeps the best ``1/eta`` (by observed validation accuracy)
    at each higher rung. The rungs are ``max_epoch * eta**-i`` for
    ``i = s_max..0``, snapped to the nearest epoch the table holds, with
    ``s_max = floor(log_eta(max_epoch / min_epoch))``; the fidelities are the
    table's epochs, from its first (``min_epoch``) to its last
    (``max_epoch``). With 12 epochs and ``eta=3``: 9 archs at epoch 1, the
    best 3 at epoch 4, the best 1 at epoch 12; with 200 epochs: 81 at 2, 27
    at 7, 9 at 22, 3 at 67, 1 at 200 (Jamieson & Talwalkar, 2016,
    "Non-stochastic Best Arm Identification and Hyperparameter
    Optimization", AISTATS; ``eta=3`` as Hyperband/BOHB and Syne Tune).

    A promoted architecture is retrained from scratch (the simulator charges
    its full training time to the new epoch). Several workers are served by
    opening new brackets while the current ones wait (HpBandSter style).

    Parameters
    ----------
    eta
        Reduction factor (>= 2).
    min_epoch, max_epoch
        Lowest and highest fidelity; ``None`` = the table's first and last epoch.
    n_initial
        Architectures in the first rung; ``None`` = ``eta ** s_max``, so one
        reaches the last rung.
    seed
        Seed of the algorithm's own generator.
    """

    name = "sh"

    def __init__(
        self,
        *,
        eta: int = 3,
        min_epoch: int | None = None,
        max_epoch: int | None = None,
        n_initial: int | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(eta=eta, min_epoch=min_epoch, max_epoch=max_epoch, seed=seed)
        self.n_initial = n_initial

    def setup(self, space, fidelities) -> None:
        super().setup(space, fidelities)
        if self.n_initial is None:
            self._n_initial = self._eta**self._s_max
        else:
            self._n_initial = check_int(self, "n_initial", 1)

    def _bracket_plan(self, k: int) -> tuple[list[int], list[int]]:
        return self._hyperband_plan(self._s_max, self._n_initial)
