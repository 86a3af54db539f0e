"""Access to the per-architecture hardware costs that hardware-aware algorithms may see."""

from __future__ import annotations

import numpy as np

from nasbench_harness.errors import NasbenchError

#: Per-architecture metrics that are costs, not test data: an algorithm may see them.
HARDWARE_METRICS = ("latency_ms", "flops", "params")


def hardware_costs(algorithm, space, arch_metrics, metric: str) -> np.ndarray:
    """The ``(n_archs,)`` cost array of ``metric``, indexed by arch index, or a clear error."""
    if metric not in HARDWARE_METRICS:
        raise NasbenchError(
            f"{algorithm.name}: hw_metric={metric!r} is not a hardware metric; "
            f"choose one of {', '.join(HARDWARE_METRICS)}"
        )
    if arch_metrics is None:
        raise NasbenchError(
            f"{algorithm.name} needs the table's per-architecture {metric}; run it through "
            "nasbench_harness.simulator (it passes arch_metrics to setup() of algorithms "
            "with uses_arch_metrics = True), or call setup(space, fidelities, arch_metrics=...)"
        )
    if metric not in arch_metrics:
        have = ", ".join(sorted(arch_metrics)) or "none"
        raise NasbenchError(
            f"{algorithm.name}: the table has no arch metric {metric!r} (it has: {have}); "
            "choose another hw_metric"
        )
    costs = np.asarray(arch_metrics[metric], dtype=np.float64)
    if costs.shape != (space.n_archs,):
        raise NasbenchError(
            f"{algorithm.name}: arch metric {metric!r} has shape {costs.shape}, "
            f"expected ({space.n_archs},), one value per architecture index"
        )
    if np.isnan(costs).all():
        others = [m for m in HARDWARE_METRICS if m in arch_metrics and m != metric]
        usable = [m for m in others if not np.isnan(np.asarray(arch_metrics[m])).all()]
        raise NasbenchError(
            f"{algorithm.name}: the table has no value of {metric!r} (its source never "
            "recorded it); choose another hw_metric"
            + (f", e.g. --param hw_metric={usable[0]}" if usable else "")
        )
    return costs
