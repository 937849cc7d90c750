"""Names kept for one release after a rename; each access warns with `DeprecationWarning`.

`specroute.engine.llm` imports this module's `__getattr__` as its own (PEP 562), so the old
names resolve only when asked for, and `__all__` lists only the new ones.
"""

from __future__ import annotations

import warnings
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from ._client import open_llm_client
from ._limits import DEFAULT_LIMITS, ProviderLimits
from ._provider import Provider
from ._retry import DEFAULT_RETRY, RetryPolicy
from ._simulated import SIMULATED_PRICES, SimulatedModel, SimulatedTransport

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ._client import LLMClient
    from ._meter import UsageMeter
    from ._prices import PriceTable

__all__ = ["__getattr__"]


@asynccontextmanager
async def _open_simulated_client(
    transport: SimulatedTransport | None = None,
    *,
    provider: Provider | None = None,
    limits: ProviderLimits = DEFAULT_LIMITS,
    retry: RetryPolicy = DEFAULT_RETRY,
    prices: PriceTable = SIMULATED_PRICES,
    meter: UsageMeter | None = None,
    seed: int | None = 0,
) -> AsyncIterator[LLMClient]:
    """Deprecated: use `open_llm_client(Provider.simulated(transport))`."""
    transport = SimulatedTransport() if transport is None else transport
    if provider is None:
        provider = Provider.simulated(transport, limits=limits)
    async with open_llm_client(
        provider, retry=retry, prices=prices, meter=meter, seed=seed, transport=transport
    ) as client:
        yield client


# Old name -> (what it is now, how to write it now).
_RENAMED: dict[str, tuple[object, str]] = {
    "SimulatedProvider": (SimulatedModel, "`SimulatedModel` (it configures the simulated model)"),
    "open_simulated_client": (
        _open_simulated_client,
        "`open_llm_client(Provider.simulated(transport))`",
    ),
}


def __getattr__(name: str) -> object:
    """Return a renamed object under its old name, with a `DeprecationWarning`."""
    if name in _RENAMED:
        value, instead = _RENAMED[name]
        warnings.warn(
            f"`specroute.engine.llm.{name}` is deprecated and will be removed in the next "
            f"release; use {instead}",
            DeprecationWarning,
            stacklevel=2,
        )
        return value
    raise AttributeError(f"module 'specroute.engine.llm' has no attribute {name!r}")
