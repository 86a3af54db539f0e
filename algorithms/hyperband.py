"""Hyperband over the table's epochs (Li et al., 2018)."""

from __future__ import annotations

import math

from algorithms._brackets import BracketSearch


class Hyperband(BracketSearch):
    """Hyperband: successive-halving brackets of every aggressiveness, in turn.

    Brackets cycle through ``s = s_max, s_max - 1, ..., 0`` with
    ``s_max = floor(log_eta(max_epoch / min_epoch))``: bracket ``s`` starts
    ``n = ceil((s_max + 1) / (s + 1) * eta**s)`` random architectures at epoch
    ``max_epoch * eta**-s`` and keeps the best ``1/eta`` per rung up to
    ``max_epoch`` (Li, Jamieson, DeSalvo, Rostamizadeh & Talwalkar, 2018,
    "Hyperband: A Novel Bandit-Based Approach to Hyperparameter
    Optimization", JMLR; ``eta=3`` as in BOHB and Syne Tune). The fidelities
    are the table's epochs, each rung snapped to the nearest epoch the table
    holds. With 12 epochs and ``eta=3`` (``s_max = 2``): 9 at 1 -> 3 at 4 ->
    1 at 12; 5 at 4 -> 1 at 12; 3 at 12. With 200 epochs (``s_max = 4``) the
    first bracket is 81 at 2 -> 27 at 7 -> 9 at 22 -> 3 at 67 -> 1 at 200.

    A promoted architecture is retrained from scratch; several workers are
    served by opening the next bracket while the current ones wait.

    Parameters
    ----------
    eta
        Reduction factor (>= 2).
    min_epoch, max_epoch
        Lowest and highest fidelity; ``None`` = the table's first and last epoch.
    seed
        Seed of the algorithm's own generator.
    """

    name = "hb"  # hyperparameters: BracketSearch's (eta, min_epoch, max_epoch, seed)

    def _bracket_plan(self, k: int) -> tuple[list[int], list[int]]:
        s = self._s_max - k % (self._s_max + 1)
        n = math.ceil((self._s_max + 1) / (s + 1) * self._eta**s - 1e-9)
        return self._hyperband_plan(s, n)
