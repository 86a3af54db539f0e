"""Training-free proxies: the registry (:mod:`.zero_cost`) and table scoring (:mod:`.score`)."""

from nasbench_harness.proxies.zero_cost import (
    PROXIES,
    ProxyError,
    ProxySpec,
    compute_proxy,
    get_proxy,
    naswot_kernel,
    proxy_names,
    register_proxy,
)

__all__ = [
    "PROXIES",
    "ProxyError",
    "ProxySpec",
    "compute_proxy",
    "get_proxy",
    "naswot_kernel",
    "proxy_names",
    "register_proxy",
]
