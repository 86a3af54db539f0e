"""REINFORCE with a factorised softmax policy over the ops of each edge."""

from __future__ import annotations

import math

import numpy as np

from algorithms._common import check_float, from_op_codes, op_codes
from algorithms.base import Algorithm, Proposal


class Reinforce(Algorithm):
    """REINFORCE: a softmax policy per edge, trained by policy gradient with Adam.

    The policy holds one logit per (edge, op), initialised as
    ``1e-3 * N(0, 1)`` from the algorithm's generator; an architecture is one
    independent draw per edge. Each told result updates the policy with the
    REINFORCE gradient of ``-log p(arch) * (reward - baseline)``, the reward
    being the observed validation accuracy (in percent, as the references
    use it) and the baseline a bias-corrected exponential moving average of
    the rewards, updated with the new reward before the advantage is taken.
    The optimizer is Adam (betas 0.9/0.999, eps 1e-8), written in numpy so
    torch is not needed (Williams, 1992; the NAS-Bench-101, NAS-Bench-201 and
    NATS-Bench reference scripts).

    Defaults follow NATS-Bench: ``learning_rate=0.01``, ``ema_momentum=0.9``
    (the NAS-Bench-201 documentation uses a learning rate of 0.5).

    With several workers the gradient of a late result is taken under the
    current policy (asynchronous, slightly off-policy updates); a result with
    a missing (NaN) validation accuracy is not used for an update.

    Parameters
    ----------
    learning_rate
        Adam step size.
    ema_momentum
        Momentum of the reward baseline, in [0, 1).
    seed
        Seed of the algorithm's own generator.
    """

    name = "reinforce"

    def __init__(
        self,
        *,
        learning_rate: float = 0.01,
        ema_momentum: float = 0.9,
        seed: int | None = None,
    ) -> None:
        self.learning_rate = learning_rate
        self.ema_momentum = ema_momentum
        self.seed = seed

    def setup(self, space, fidelities) -> None:
        super().setup(space, fidelities)
        self._lr = check_float(self, "learning_rate", 0.0, low_open=True)
        self._momentum = check_float(self, "ema_momentum", 0.0, 1.0, high_open=True)
        shape = (space.n_edges, len(space.ops))
        self.logits = 1e-3 * self.rng.standard_normal(shape)
        self._adam_m = np.zeros(shape)
        self._adam_v = np.zeros(shape)
        self._adam_t = 0
        self._ema_num = 0.0
        self._ema_den = 0.0

    def probabilities(self) -> np.ndarray:
        """The policy: op probabilities per edge, ``(n_edges, n_ops)``."""
        z = self.logits - self.logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def ask(self) -> Proposal:
        cdf = np.cumsum(self.probabilities(), axis=1)
        u = self.rng.random((cdf.shape[0], 1))
        ops = np.minimum((u > cdf).sum(axis=1), cdf.shape[1] - 1)
        return Proposal(arch=int(from_op_codes(self.space, ops)[0]))

    def tell(self, proposal: Proposal, result) -> None:
        reward = float(result.valid_acc)
        if math.isnan(reward):
            return
        m = self._momentum
        self._ema_num = m * self._ema_num + (1.0 - m) * reward
        self._ema_den = m * self._ema_den + (1.0 - m)
        advantage = reward - self._ema_num / self._ema_den
        ops = op_codes(self.space, result.arch)[0]
        grad_log_p = -self.probabilities()
        grad_log_p[np.arange(ops.size), ops] += 1.0
        self._adam_step(-advantage * grad_log_p)  # gradient of the loss -log p * advantage

    def _adam_step(self, grad: np.ndarray, beta1: float = 0.9, beta2: float = 0.999) -> None:
        self._adam_t += 1
        self._adam_m = beta1 * self._adam_m + (1 - beta1) * grad
        self._adam_v = beta2 * self._adam_v + (1 - beta2) * grad * grad
        m_hat = self._adam_m / (1 - beta1**self._adam_t)
        v_hat = self._adam_v / (1 - beta2**self._adam_t)
        self.logits = self.logits - self._lr * m_hat / (np.sqrt(v_hat) + 1e-8)
