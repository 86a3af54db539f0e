"""REINFORCE with a factorised softmax policy over the space's categorical variables."""

from __future__ import annotations

import math

import numpy as np

from algorithms._common import check_float
from algorithms.base import Algorithm, Proposal

#: Most draws of the policy per ask before a uniform random architecture is proposed.
_MAX_DRAWS = 1000


class Reinforce(Algorithm):
    """REINFORCE: a softmax policy per variable, trained by policy gradient with Adam.

    The policy holds one categorical distribution per variable of the
    space's categorical encoding (``space.categorical_sizes``; NB201: the op
    of each of the 6 edges, 5 choices; NB101: 21 edge bits of the 7 x 7
    matrix, 2 choices, and the ops of 5 interior slots, 3 choices). Its
    logits are a ``(d, max size)`` array initialised as ``1e-3 * N(0, 1)``
    from the algorithm's generator, the logits beyond a variable's size
    masked out; an architecture is one independent draw per variable,
    decoded by ``space.decode_categorical``. Each told result updates the
    policy with the REINFORCE gradient of ``-log p(code) * (reward -
    baseline)`` for the code that was drawn (carried in the proposal's
    ``info``), the reward being the observed validation accuracy (in
    percent, as the references use it) and the baseline a bias-corrected
    exponential moving average of the rewards, updated with the new reward
    before the advantage is taken. The optimizer is Adam (betas 0.9/0.999,
    eps 1e-8), written in numpy so torch is not needed (Williams, 1992; the
    NAS-Bench-101, NAS-Bench-201 and NATS-Bench reference scripts).

    Codes that are no architecture (NB101: a cell with more than 9 edges
    after pruning, or no input-to-output path; about a quarter of uniform
    draws) are rejected and drawn again, up to 1000 draws per ask; the
    gradient ignores the rejected mass (it is that of ``log p(code)``, not
    of the policy conditioned on valid codes). If every draw is rejected,
    the ask proposes a uniform random architecture instead, credited (as a
    proposal without a code, e.g. one made outside ``ask``) to the
    architecture's own code, ``space.encode_categorical(arch)``. On NB201
    every code is an architecture: one draw per ask.

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
        self._sizes = np.asarray(space.categorical_sizes, dtype=np.int64)
        shape = (self._sizes.size, int(self._sizes.max()))
        self._valid = np.arange(shape[1])[None, :] < self._sizes[:, None]  # unmasked logits
        self.logits = 1e-3 * self.rng.standard_normal(shape)
        self._adam_m = np.zeros(shape)
        self._adam_v = np.zeros(shape)
        self._adam_t = 0
        self._ema_num = 0.0
        self._ema_den = 0.0

    def probabilities(self) -> np.ndarray:
        """The policy: choice probabilities per variable, ``(d, max size)``, 0 where masked."""
        logits = np.where(self._valid, self.logits, -np.inf)
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def ask(self) -> Proposal:
        cdf = np.cumsum(self.probabilities(), axis=1)
        for _ in range(_MAX_DRAWS):
            u = self.rng.random((cdf.shape[0], 1))
            code = np.minimum((u > cdf).sum(axis=1), self._sizes - 1)
            arch = int(self.space.decode_categorical(code[None, :])[0])
            if arch >= 0:
                return Proposal(arch=arch, info=tuple(code.tolist()))
        return Proposal(arch=int(self.space.sample(self.rng)))  # credited to its own code

    def tell(self, proposal: Proposal, result) -> None:
        reward = float(result.valid_acc)
        if math.isnan(reward):
            return
        m = self._momentum
        self._ema_num = m * self._ema_num + (1.0 - m) * reward
        self._ema_den = m * self._ema_den + (1.0 - m)
        advantage = reward - self._ema_num / self._ema_den
        if proposal.info is not None:
            code = np.asarray(proposal.info, dtype=np.int64)  # the code drawn in ask
        else:  # a proposal made elsewhere: the arch's own code
            code = self.space.encode_categorical(int(result.arch))[0]
        grad_log_p = -self.probabilities()
        grad_log_p[np.arange(code.size), code] += 1.0
        self._adam_step(-advantage * grad_log_p)  # gradient of the loss -log p * advantage

    def _adam_step(self, grad: np.ndarray, beta1: float = 0.9, beta2: float = 0.999) -> None:
        self._adam_t += 1
        self._adam_m = beta1 * self._adam_m + (1 - beta1) * grad
        self._adam_v = beta2 * self._adam_v + (1 - beta2) * grad * grad
        m_hat = self._adam_m / (1 - beta1**self._adam_t)
        v_hat = self._adam_v / (1 - beta2**self._adam_t)
        self.logits = self.logits - self._lr * m_hat / (np.sqrt(v_hat) + 1e-8)
