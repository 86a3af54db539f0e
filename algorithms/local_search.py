"""Local search with first-improvement moves and random restarts (White et al., 2021)."""

from __future__ import annotations

from algorithms._common import check_int, score
from algorithms.base import Algorithm, Proposal


class LocalSearch(Algorithm):
    """Local search over one-op neighbourhoods, with random restarts.

    The search starts from ``n_init`` uniform random architectures and moves
    to the best of them. From the current architecture it scans its one-op
    neighbours (``space.neighbours``: 24 in NAS-Bench-201; in NAS-Bench-101
    the distinct cells one edge flip, op change or vertex insertion away)
    in a freshly shuffled order and moves at
    the first neighbour with a strictly higher observed validation accuracy
    (first improvement). A neighbour seen before (isomorphic ones included)
    is not queried again: its first observed accuracy is reused. When every
    neighbour was scanned without improvement the architecture is a local
    optimum and the search restarts from a new random architecture (one not
    queried before), as NASLib's implementation does (White, Nolen & Savani, 2021, "Exploring
    the Loss Landscape in Neural Architecture Search", UAI; naszilla and
    NASLib reference code; ``n_init=10`` there).

    With several workers the scan proceeds speculatively: the next unscanned
    neighbours are proposed before earlier ones return, and the search moves
    as soon as any told result beats the current architecture. Results of an
    abandoned scan that arrive after a restart are candidates for the new
    start only if they beat that scan's architecture.

    Parameters
    ----------
    n_init
        Random architectures evaluated before the first move.
    seed
        Seed of the algorithm's own generator.
    """

    name = "ls"

    def __init__(self, *, n_init: int = 10, seed: int | None = None) -> None:
        self.n_init = n_init
        self.seed = seed

    def setup(self, space, fidelities) -> None:
        super().setup(space, fidelities)
        self._canonical = space.canonical_ids
        self._n_start_left = check_int(self, "n_init", 1)
        self._start_results: list[tuple[int, float]] = []
        self._values: dict[int, float] = {}  # canonical id -> first observed score
        self._pending: set[int] = set()
        self._center: tuple[int, float] | None = None
        self._scan: list[int] = []
        self._scan_pos = 0
        self._scan_id = 0
        self._abandoned: dict[int, float] = {}  # scan id -> score of its centre

    # -- moves ----------------------------------------------------------------
    def _move(self, arch: int, value: float) -> None:
        self._center = (arch, value)
        neighbours = self.space.neighbours(arch)
        self._scan = [int(neighbours[i]) for i in self.rng.permutation(len(neighbours))]
        self._scan_pos = 0
        self._scan_id += 1

    def _restart(self) -> None:
        if self._center is not None:
            self._abandoned[self._scan_id] = self._center[1]
        self._center = None
        self._start_results = []
        self._n_start_left = 1

    def _random(self) -> Proposal:
        for _ in range(100):  # an unseen architecture, unless (nearly) all were seen
            arch = int(self.space.sample(self.rng))
            canonical = int(self._canonical[arch])
            if canonical not in self._values and canonical not in self._pending:
                break
        self._pending.add(canonical)
        return Proposal(arch=arch, info=("start", 0))

    # -- ask / tell -----------------------------------------------------------
    def ask(self) -> Proposal:
        if self._n_start_left > 0:
            self._n_start_left -= 1
            return self._random()
        if self._center is None:
            if not self._start_results:
                return self._random()  # several workers, nothing told yet
            best = max(self._start_results, key=lambda item: item[1])
            self._move(*best)
        while True:
            center_value = self._center[1]
            while self._scan_pos < len(self._scan):
                arch = self._scan[self._scan_pos]
                self._scan_pos += 1
                canonical = int(self._canonical[arch])
                if canonical in self._pending:
                    continue
                if canonical in self._values:
                    if self._values[canonical] > center_value:
                        self._move(arch, self._values[canonical])
                        break
                    continue
                self._pending.add(canonical)
                return Proposal(arch=arch, info=("scan", self._scan_id))
            else:
                self._restart()  # local optimum: every neighbour scanned
                self._n_start_left -= 1
                return self._random()

    def tell(self, proposal: Proposal, result) -> None:
        arch = int(result.arch)
        canonical = int(self._canonical[arch])
        value = score(result.valid_acc)
        self._pending.discard(canonical)
        self._values.setdefault(canonical, value)
        kind, ident = proposal.info if isinstance(proposal.info, tuple) else ("start", 0)
        if self._center is None:
            if kind == "scan" and value <= self._abandoned.get(ident, -float("inf")):
                return  # a late neighbour of an abandoned local optimum: no better
            self._start_results.append((arch, value))
        elif value > self._center[1]:
            self._move(arch, value)
