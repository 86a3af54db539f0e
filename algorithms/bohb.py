"""BOHB: Hyperband with a kernel density model for new architectures (Falkner et al., 2018)."""

from __future__ import annotations

import math

import numpy as np

from algorithms._common import check_float, check_int, from_op_codes, op_codes, uniform_codes
from algorithms.hyperband import Hyperband


class BOHB(Hyperband):
    """BOHB: Hyperband brackets whose new architectures come from a TPE-style KDE model.

    Brackets are those of Hyperband (``hb``) over the table's epochs. A new
    architecture is uniform random with probability ``random_fraction`` or
    while no model exists; otherwise it maximises ``l(x) / g(x)`` over
    ``n_samples`` draws from ``l``. The model is built on the largest epoch
    with enough results: the results there, sorted by observed validation
    accuracy, are split into a good set (the best ``top_fraction``, at least
    ``min_points``) and a bad set (the rest, at least ``min_points``, so a
    model needs ``2 * min_points`` results at an epoch for these defaults).
    ``l`` and ``g`` are products of one Aitchison-Aitken (categorical) kernel
    per variable of the space's categorical encoding
    (``space.categorical_sizes``: on NB201 the op of each of the 6 edges, 5
    choices; on NB101 the 21 edge bits of the 7 x 7 matrix, 2 choices, and
    the ops of 5 interior slots, 3 choices), as BOHB does for categorical
    parameters: the bandwidth of each variable with ``c`` choices is the
    normal-reference rule ``1.06 * std * n ** (-1 / (4 + d))`` on its codes
    scaled to [0, 1], clipped to ``[min_bandwidth, (c - 1) / c]`` (``(c -
    1) / c`` is the uniform kernel). HpBandSter applies the rule to the raw
    codes 0..c-1, which for 5 ops gives bandwidths at or beyond the uniform
    kernel: a model that cannot tell good from bad; the scaling is this
    implementation's choice. A draw from ``l`` copies a random good
    architecture's code and keeps each variable with probability ``1 -
    bandwidth_factor * bandwidth``, otherwise draws it uniformly: the
    widening of all bandwidths in the paper's Algorithm 2 (HpBandSter's code
    widens only continuous ones and keeps a categorical variable with
    probability ``1 - bandwidth``, so it mutates less) (Falkner,
    Klein & Hutter, 2018, "BOHB: Robust and Efficient Hyperparameter
    Optimization at Scale", ICML; HpBandSter defaults: top 15 %,
    ``min_points = d + 1`` (7 on NB201, 27 on NB101), 64 samples, bandwidth
    factor 3, minimum bandwidth 1e-3, random fraction 1/3). Draws whose code
    is no architecture (NB101: more than 9 edges after pruning, or no
    input-to-output path) are skipped, and architectures already in the
    same bracket are not proposed twice; if no draw is left, the new
    architecture is uniform random.

    Parameters
    ----------
    eta
        Reduction factor (>= 2).
    min_epoch, max_epoch
        Lowest and highest fidelity; ``None`` = the table's first and last epoch.
    top_fraction
        Fraction of results in the good set.
    min_points
        Least size of the good and the bad set; ``None`` = number of variables + 1.
    n_samples
        Draws from ``l`` per new architecture.
    random_fraction
        Probability of a uniform random architecture.
    bandwidth_factor
        Widening of the bandwidth when drawing from ``l``.
    min_bandwidth
        Least bandwidth.
    seed
        Seed of the algorithm's own generator.
    """

    name = "bohb"

    def __init__(
        self,
        *,
        eta: int = 3,
        min_epoch: int | None = None,
        max_epoch: int | None = None,
        top_fraction: float = 0.15,
        min_points: int | None = None,
        n_samples: int = 64,
        random_fraction: float = 1 / 3,
        bandwidth_factor: float = 3.0,
        min_bandwidth: float = 1e-3,
        seed: int | None = None,
    ) -> None:
        super().__init__(eta=eta, min_epoch=min_epoch, max_epoch=max_epoch, seed=seed)
        self.top_fraction = top_fraction
        self.min_points = min_points
        self.n_samples = n_samples
        self.random_fraction = random_fraction
        self.bandwidth_factor = bandwidth_factor
        self.min_bandwidth = min_bandwidth

    def setup(self, space, fidelities) -> None:
        super().setup(space, fidelities)
        self._top_fraction = check_float(self, "top_fraction", 0.0, 1.0, low_open=True)
        if self.min_points is None:
            self._min_points = len(space.categorical_sizes) + 1
        else:
            self._min_points = check_int(self, "min_points", 1)
        check_int(self, "n_samples", 1)
        check_float(self, "random_fraction", 0.0, 1.0)
        check_float(self, "bandwidth_factor", 0.0, low_open=True)
        check_float(self, "min_bandwidth", 0.0, 1.0, low_open=True)
        self._sizes = np.asarray(space.categorical_sizes, dtype=np.int64)
        self._observations: dict[int, tuple[list[int], list[float]]] = {}
        self._models: dict[int, tuple[int, tuple] | None] = {}

    def _observe(self, arch: int, epoch: int, value: float) -> None:
        if math.isfinite(value):
            archs, values = self._observations.setdefault(epoch, ([], []))
            archs.append(arch)
            values.append(value)

    # -- the model --------------------------------------------------------------
    def _model(self):
        """(good codes, good bandwidths, bad codes, bad bandwidths) at the largest usable epoch."""
        for epoch in sorted(self._observations, reverse=True):
            archs, values = self._observations[epoch]
            cached = self._models.get(epoch)
            if cached is not None and cached[0] == len(archs):
                if cached[1] is not None:
                    return cached[1]
                continue
            model = self._build(archs, values)
            self._models[epoch] = (len(archs), model)
            if model is not None:
                return model
        return None

    def _build(self, archs: list[int], values: list[float]):
        n = len(archs)
        n_good = max(self._min_points, int(self._top_fraction * n))
        if n - n_good < self._min_points:
            return None
        order = np.argsort(-np.asarray(values), kind="stable")
        codes = op_codes(self.space, np.asarray(archs)[order])
        good, bad = codes[:n_good], codes[n_good:]
        return good, self._bandwidth(good), bad, self._bandwidth(bad)

    def _bandwidth(self, codes: np.ndarray) -> np.ndarray:
        n, d = codes.shape
        scaled = codes / (self._sizes - 1)  # codes on [0, 1]
        bw = 1.06 * scaled.std(axis=0) * n ** (-1.0 / (4 + d))
        return np.clip(bw, float(self.min_bandwidth), (self._sizes - 1) / self._sizes)

    def _density(self, x: np.ndarray, data: np.ndarray, bw: np.ndarray) -> np.ndarray:
        h = bw
        same = x[:, None, :] == data[None, :, :]
        kernel = np.where(same, 1.0 - h, h / (self._sizes - 1))
        return kernel.prod(axis=2).mean(axis=1)

    def _sample_new(self, bracket) -> int:
        model = None
        if self.rng.random() >= float(self.random_fraction):
            model = self._model()
        if model is None:
            return super()._sample_new(bracket)
        good, good_bw, bad, bad_bw = model
        k = int(self.n_samples)
        base = good[self.rng.integers(len(good), size=k)]
        keep_prob = 1.0 - np.maximum(good_bw * float(self.bandwidth_factor), self.min_bandwidth)
        keep = self.rng.random(base.shape) < keep_prob[None, :]
        random_codes = uniform_codes(self.rng, self._sizes, base.shape)
        samples = np.where(keep, base, random_codes)
        log_ratio = np.log(np.maximum(self._density(samples, good, good_bw), 1e-32)) - np.log(
            np.maximum(self._density(samples, bad, bad_bw), 1e-32)
        )
        ratio = np.round(log_ratio, 9)  # equal up to rounding noise: keep draw order
        archs = from_op_codes(self.space, samples)  # -1: the code is no architecture
        taken = {int(self._canonical[a]) for a in bracket.archs}
        for i in np.argsort(-ratio, kind="stable"):
            if archs[i] >= 0 and int(self._canonical[archs[i]]) not in taken:
                return int(archs[i])
        return super()._sample_new(bracket)
