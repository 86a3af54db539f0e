"""BANANAS: Bayesian optimisation with an ensemble of neural predictors (White et al., 2021)."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import torch

from algorithms._common import check_choice, check_float, check_int, score
from algorithms.base import Algorithm, Proposal
from nasbench_harness.train import torch_threads

PARENT_PATIENCE = 5  # naszilla's patience_factor: parents tried per parent asked for


class Bananas(Algorithm):
    """BANANAS: an MLP ensemble on the path encoding picks batches of mutated candidates.

    After ``n_init`` uniform random architectures, each round trains an
    ensemble of ``n_models`` MLPs (ReLU, mean absolute error, Adam) on the
    path encoding of every architecture told so far, with the observed
    validation accuracy as target. Candidates are made by mutating the best
    architectures, ``n_candidates / n_parents`` draws of 1 to ``max_edits``
    edits from each, best first, until there are ``n_candidates`` distinct
    ones never queried or pending (isomorphs count once) or the best
    ``5 * n_parents`` have been used, as naszilla does; topped up with random
    unseen architectures if fewer than a batch;
    the ``batch_size`` candidates with the best acquisition value are
    queried next. Acquisition is independent Thompson sampling (``"its"``: one
    draw from a normal with the ensemble's mean and standard deviation per
    candidate) or an upper confidence bound (``"ucb"``: mean + ``ucb_beta`` *
    std) (White, Neiswanger & Savani, 2021, "BANANAS: Bayesian Optimization
    with Neural Architectures for Neural Architecture Search", AAAI; naszilla
    and NASLib code).

    Reference settings: 10 initial, batch (k) 10, 5 models of 10 layers x 20
    units, MAE loss, Adam lr 0.01, 200 epochs, path encoding, ITS, 100
    candidates from mutating the best 2.

    The encoding is the space's ``encode_path`` and an edit its
    ``mutate``: on NB201 100 path features and one-op edits, on NB101 the
    364 features of BANANAS' NB101 encoding (one per input-to-output path
    labelled by its interior ops) and one change of the cell (an edge
    flipped, an op replaced or a vertex put on an edge). Deviations, to keep 100 runs fast:
    the defaults here use 3 hidden layers of 20 units (``n_layers=10`` gives
    the reference depth), and each model trains ``n_epochs=100`` full-batch
    Adam steps instead of 200 epochs of mini-batches of 32 (a run of 200
    queries takes about a second instead of tens; ``benchmarks/bench_search.py``
    measures it); targets are standardised and weights He-initialised. All
    models train at once as one batched torch network whose gradient is
    written out by hand (the one autograd gives, without its overhead).
    Weights come from a ``torch.Generator`` seeded from the algorithm's
    generator, and training runs on one thread.

    With several workers a round's batch is handed out one proposal per ask;
    a new round starts when the batch is used up, on what was told by then.

    Parameters
    ----------
    n_init
        Random architectures before the first model.
    batch_size
        Architectures chosen per round (k).
    n_candidates
        Candidates wanted per round (and mutation draws per ``n_parents`` parents).
    n_parents
        Parents per ``n_candidates`` draws; up to ``5 * n_parents`` of the best
        are mutated until ``n_candidates`` distinct unseen candidates are found.
    max_edits
        Most edits (``space.mutate`` calls) per candidate.
    n_models
        Ensemble size.
    n_layers, layer_width
        Hidden layers of each MLP and their width.
    n_epochs
        Full-batch Adam steps per model and round.
    learning_rate
        Adam step size.
    acquisition
        ``"its"`` or ``"ucb"``.
    ucb_beta
        Weight of the standard deviation in UCB.
    seed
        Seed of the algorithm's own generator.
    """

    name = "bananas"

    def __init__(
        self,
        *,
        n_init: int = 10,
        batch_size: int = 10,
        n_candidates: int = 100,
        n_parents: int = 2,
        max_edits: int = 1,
        n_models: int = 5,
        n_layers: int = 3,
        layer_width: int = 20,
        n_epochs: int = 100,
        learning_rate: float = 0.01,
        acquisition: str = "its",
        ucb_beta: float = 0.5,
        seed: int | None = None,
    ) -> None:
        self.n_init = n_init
        self.batch_size = batch_size
        self.n_candidates = n_candidates
        self.n_parents = n_parents
        self.max_edits = max_edits
        self.n_models = n_models
        self.n_layers = n_layers
        self.layer_width = layer_width
        self.n_epochs = n_epochs
        self.learning_rate = learning_rate
        self.acquisition = acquisition
        self.ucb_beta = ucb_beta
        self.seed = seed

    def setup(self, space, fidelities) -> None:
        super().setup(space, fidelities)
        for name in (
            "n_init",
            "batch_size",
            "n_candidates",
            "n_parents",
            "max_edits",
            "n_models",
            "layer_width",
            "n_epochs",
        ):
            check_int(self, name, 1)
        check_int(self, "n_layers", 0)
        check_float(self, "learning_rate", 0.0, low_open=True)
        check_choice(self, "acquisition", ("its", "ucb"))
        check_float(self, "ucb_beta", 0.0)
        self._canonical = space.canonical_ids
        self._torch_gen = torch.Generator().manual_seed(int(self.rng.integers(2**63 - 1)))
        self._queue: deque[int] = deque(int(a) for a in space.sample(self.rng, self.n_init))
        self._archs: list[int] = []
        self._values: list[float] = []
        self._seen: set[int] = set()  # canonical ids queried or pending
        for arch in self._queue:
            self._seen.add(int(self._canonical[arch]))
        self._encodings: dict[int, np.ndarray] = {}

    # -- ask / tell -----------------------------------------------------------
    def ask(self) -> Proposal:
        if not self._queue:
            if len(self._archs) < 2:
                self._queue.append(self._random_unseen())  # several workers, too little told
            else:
                self._queue.extend(self._next_batch())
        arch = self._queue.popleft()
        self._seen.add(int(self._canonical[arch]))
        return Proposal(arch=arch)

    def tell(self, proposal: Proposal, result) -> None:
        value = score(result.valid_acc)
        if math.isfinite(value):
            self._archs.append(int(result.arch))
            self._values.append(value)

    # -- one round --------------------------------------------------------------
    def _random_unseen(self) -> int:
        for _ in range(1000):
            arch = int(self.space.sample(self.rng))
            if int(self._canonical[arch]) not in self._seen:
                return arch
        return int(self.space.sample(self.rng))  # (nearly) everything seen

    def _candidates(self) -> list[int]:
        """Unseen candidates, isomorphs once: mutants of the best, topped up with random ones.

        As naszilla's ``get_candidates``: the parents are taken best first,
        ``n_candidates / n_parents`` mutation draws each, until
        ``n_candidates`` distinct unseen candidates are found or the best
        ``PARENT_PATIENCE * n_parents`` are used up (on NB201 one parent has
        only 24 one-edit neighbours, so the best 2 alone give fewer than 50).
        """
        order = np.argsort(-np.asarray(self._values), kind="stable")
        parents = [self._archs[i] for i in order[: self.n_parents * PARENT_PATIENCE]]
        draws = max(1, self.n_candidates // self.n_parents)
        found: dict[int, int] = {}  # canonical id -> arch
        for parent in parents:
            if len(found) >= self.n_candidates:
                break
            for _ in range(draws):
                arch = parent
                for _ in range(int(self.rng.integers(1, self.max_edits + 1))):
                    arch = int(self.space.mutate(arch, self.rng))
                canonical = int(self._canonical[arch])
                if canonical not in self._seen:
                    found.setdefault(canonical, arch)
        for _ in range(1000):  # top up to a full batch (late in a run, few mutants are unseen)
            if len(found) >= self.batch_size:
                break
            arch = self._random_unseen()
            canonical = int(self._canonical[arch])
            if canonical in self._seen:
                break  # (nearly) everything seen
            found.setdefault(canonical, arch)
        return list(found.values())

    def _encode(self, archs: list[int]) -> np.ndarray:
        missing = [a for a in archs if a not in self._encodings]
        if missing:
            for arch, row in zip(missing, self.space.encode_path(np.asarray(missing))):
                self._encodings[arch] = np.asarray(row, dtype=np.float32)
        return np.stack([self._encodings[a] for a in archs])

    def _next_batch(self) -> list[int]:
        candidates = self._candidates()
        if not candidates:  # every arch has been seen: nothing left to rank, query one again
            return [self._random_unseen()]
        x_train = self._encode(self._archs)
        y = np.asarray(self._values, dtype=np.float64)
        mean, std = self._fit_predict(x_train, y, self._encode(candidates))
        if self.acquisition == "its":
            value = self.rng.normal(mean, std)
        else:
            value = mean + float(self.ucb_beta) * std
        order = np.argsort(-value, kind="stable")[: self.batch_size]
        return [candidates[i] for i in order]

    def _fit_predict(self, x_train, y, x_test) -> tuple[np.ndarray, np.ndarray]:
        """Train the ensemble on (x_train, y); mean and std of its predictions on x_test."""
        y_mean = float(y.mean())
        y_std = float(y.std()) or 1.0
        with torch_threads(1), torch.no_grad():
            ensemble = _Ensemble(self._init_params(x_train.shape[1]))
            x = torch.from_numpy(x_train)
            target = torch.from_numpy(((y - y_mean) / y_std).astype(np.float32))
            adam = _FlatAdam(ensemble.flat, float(self.learning_rate))
            for _ in range(int(self.n_epochs)):
                ensemble.mae_gradient(x, target)
                adam.step(ensemble.flat_grad)
            pred = ensemble.forward(torch.from_numpy(x_test)).double().numpy()
        pred = pred * y_std + y_mean  # (n_models, n_test)
        return pred.mean(axis=0), pred.std(axis=0)

    def _init_params(self, n_in: int) -> list[torch.Tensor]:
        """He-initialised weights and zero biases of all models, drawn from the own generator."""
        sizes = [n_in] + [int(self.layer_width)] * int(self.n_layers) + [1]
        params = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            w = torch.randn(self.n_models, fan_in, fan_out, generator=self._torch_gen)
            params.append(w * math.sqrt(2.0 / fan_in))
            params.append(torch.zeros(self.n_models, 1, fan_out))
        return params


class _Ensemble:
    """The MLPs of all models as one batched network, with its gradient written out by hand.

    Parameters live in one flat buffer (``flat``; ``params`` are views of it:
    per layer a weight ``(n_models, fan_in, fan_out)`` and a bias
    ``(n_models, 1, fan_out)``) and so do their gradients (``flat_grad``), so
    that a training step is a few dozen tensor operations: no autograd graph,
    no optimizer bookkeeping. :meth:`mae_gradient` gives the gradient that
    autograd gives for the same loss (a test checks it).
    """

    def __init__(self, params: list[torch.Tensor]) -> None:
        n = sum(p.numel() for p in params)
        self.flat = torch.empty(n, dtype=torch.float32)
        self.flat_grad = torch.zeros(n, dtype=torch.float32)
        self.params, self.grads = [], []
        offset = 0
        for p in params:
            view = self.flat[offset : offset + p.numel()].view(p.shape)
            view.copy_(p)
            self.params.append(view)
            self.grads.append(self.flat_grad[offset : offset + p.numel()].view(p.shape))
            offset += p.numel()

    @property
    def n_layers(self) -> int:
        return len(self.params) // 2

    def forward(self, x: torch.Tensor, keep: list | None = None) -> torch.Tensor:
        """Predictions ``(n_models, n)`` for inputs ``x`` ``(n, d)``; ``keep`` collects layer inputs."""
        h = x.unsqueeze(0).expand(self.params[0].shape[0], -1, -1)
        for i in range(self.n_layers):
            if keep is not None:
                keep.append(h)
            h = torch.baddbmm(self.params[2 * i + 1], h, self.params[2 * i])
            if i < self.n_layers - 1:
                h = h.clamp_min_(0.0)
        return h.squeeze(-1)

    def mae_gradient(self, x: torch.Tensor, target: torch.Tensor) -> None:
        """Write into ``flat_grad`` the gradient of ``mean |forward(x) - target|`` (over models
        and examples; the subgradient 0 where a prediction equals its target)."""
        inputs: list[torch.Tensor] = []
        pred = self.forward(x, inputs)
        g = (pred - target).sign_().mul_(1.0 / pred.numel()).unsqueeze(-1)
        for i in reversed(range(self.n_layers)):
            h = inputs[i]
            torch.bmm(h.transpose(1, 2), g, out=self.grads[2 * i])
            torch.sum(g, dim=1, keepdim=True, out=self.grads[2 * i + 1])
            if i > 0:
                g = torch.bmm(g, self.params[2 * i].transpose(1, 2))
                g = torch.ops.aten.threshold_backward(g, h, 0.0)  # the ReLU that made h


class _FlatAdam:
    """Adam (Kingma & Ba, 2015; betas 0.9/0.999, eps 1e-8, no weight decay) on one flat buffer:
    the update of ``torch.optim.Adam`` with its defaults, up to rounding."""

    def __init__(self, param: torch.Tensor, lr: float, beta1=0.9, beta2=0.999, eps=1e-8):
        self.param, self.lr, self.beta1, self.beta2, self.eps = param, lr, beta1, beta2, eps
        self.m = torch.zeros_like(param)
        self.v = torch.zeros_like(param)
        self.t = 0

    def step(self, grad: torch.Tensor) -> None:
        self.t += 1
        self.m.lerp_(grad, 1.0 - self.beta1)
        self.v.mul_(self.beta2).addcmul_(grad, grad, value=1.0 - self.beta2)
        correction1 = 1.0 - self.beta1**self.t
        correction2 = 1.0 - self.beta2**self.t
        denom = self.v.sqrt().div_(math.sqrt(correction2)).add_(self.eps)
        self.param.addcdiv_(self.m, denom, value=-self.lr / correction1)
