"""Random search with weight sharing (RSPS; Li & Talwalkar, UAI 2019)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from nasbench_harness.errors import NasbenchError
from nasbench_harness.oneshot._common import OneShotMethod, _check_number, _Run
from nasbench_harness.oneshot.supernet import N_EDGES, N_OPS

__all__ = ["RSPS"]


class RSPS(OneShotMethod):
    """Random-sampling one-shot: train on uniformly sampled paths, rank candidates by inherited weights.

    Every step draws one path uniformly (each edge's op independently and
    uniformly from the five, ``none`` included, as NAS-Bench-201's
    ``random_genotype``) and takes an SGD step of the weights it uses on a
    batch of the training split (all of it: there are no architecture
    parameters to fit on a second half). To derive an arch, ``n_candidates``
    archs drawn uniformly once at the start are each evaluated with the
    supernet's current weights on the first ``eval_examples`` validation
    examples; the best is returned (ties: the first drawn). Derivation
    happens every ``derive_every`` epochs and after the last.

    Settings (NAS-Bench-201 ``configs/nas-benchmark/algos/RANDOM.config`` and
    its RANDOM-NAS search script, ``shared/reference/algorithms.md``): SGD
    Nesterov, momentum 0.9, lr 0.025 cosine to 0.001, weight decay 5e-4,
    batch 64, gradient clip 5, 250 epochs, 100 candidates; BN without affine
    parameters or running statistics in the candidate ops. NAS-Bench-201
    scores each candidate on one validation batch (a different one per
    candidate); here every candidate sees the same ``eval_examples``
    examples. The default ``epochs`` is the reduced CPU schedule.

    Parameters
    ----------
    epochs, batch_size, lr, lr_min, momentum, nesterov, weight_decay, grad_clip
        As for :class:`~nasbench_harness.oneshot.darts.DARTS`; one epoch is
        one pass over the whole training split.
    n_candidates
        Archs ranked at each derivation.
    derive_every
        Epochs between derivations (the last epoch always derives).
    eval_examples
        Validation examples per candidate (None: the whole split).
    seed
        Seed of every draw (initialisation, batch order, paths, candidates).
    """

    name = "rsps"
    uses_arch_split = False
    reference_epochs = 250
    reference = (
        "Li & Talwalkar, Random Search and Reproducibility for NAS, UAI 2019; settings of "
        "NAS-Bench-201 configs/nas-benchmark/algos/RANDOM.config and its RANDOM-NAS script"
    )

    def __init__(
        self,
        *,
        epochs: int = 60,
        batch_size: int = 64,
        lr: float = 0.025,
        lr_min: float = 0.001,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 5e-4,
        grad_clip: float | None = 5.0,
        n_candidates: int = 100,
        derive_every: int = 10,
        eval_examples: int | None = 512,
        seed: int | None = None,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_min = lr_min
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.n_candidates = n_candidates
        self.derive_every = derive_every
        self.eval_examples = eval_examples
        self.seed = seed

    def _check_params(self) -> None:
        super()._check_params()
        _check_number("n_candidates", self.n_candidates, minimum=1, integer=True)
        _check_number("derive_every", self.derive_every, minimum=1, integer=True)

    def _derivation_epochs(self) -> Sequence[int]:
        every = int(self.derive_every)
        epochs = int(self.epochs)
        return sorted({*range(every, epochs + 1, every), epochs})

    def _setup(self, run: _Run) -> None:
        rng = np.random.default_rng([int(self.seed), 0xCA5D])
        run.candidates = [
            tuple(int(k) for k in row)
            for row in rng.integers(0, N_OPS, size=(int(self.n_candidates), N_EDGES))
        ]

    def _train_step(self, run: _Run, xb, yb, xa, ya) -> None:
        self._weight_step(run, xb, yb, choice=sample_path(run.sample_gen))

    def _derive(self, run: _Run) -> tuple[tuple[int, ...], float]:
        scores = [run.accuracy(c) for c in run.candidates]
        best = int(np.argmax(scores))  # the first of equal ones
        return run.candidates[best], float(scores[best])


def sample_path(generator: torch.Generator) -> list[int]:
    """One path drawn uniformly: six op indices, each uniform over the five ops."""
    return torch.randint(0, N_OPS, (N_EDGES,), generator=generator).tolist()


def train_uniform_supernet(recipe, splits, *, seed: int, device="cpu", **params):
    """Train a supernet on uniformly sampled paths (RSPS' training, no derivation).

    Returns the trained supernet and the run's information (the method's
    parameters, steps, device, wall seconds). Used by the one-shot proxy.
    """
    import time

    from nasbench_harness.train import _check_splits, _deterministic, describe_device

    method = RSPS(seed=seed, **params)
    method._check_params()
    _check_splits(recipe, splits)
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NasbenchError(f"device {device} asked for but CUDA is not available: use cpu")
    run = _Run(method, recipe, splits, device)
    start = time.perf_counter()
    with _deterministic(device):
        run.build()
        for _ in range(int(method.epochs)):
            method._train_epoch(run)
        if device.type == "cuda":  # queued kernels belong to the training time
            torch.cuda.synchronize(device)
    info = {
        "method": "rsps (uniform single-path training, no derivation)",
        "params": method.get_params(),
        "steps": int(run.step),
        "train_wall_s": time.perf_counter() - start,
        "device": describe_device(device),
    }
    return run.supernet, info
