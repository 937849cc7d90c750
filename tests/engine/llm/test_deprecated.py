"""Renamed names still work for one release, each with a `DeprecationWarning` saying the new way."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import specroute.engine.llm as llm_package
from specroute.engine.llm import SimulatedModel, SimulatedTransport

if TYPE_CHECKING:
    from trio.testing import MockClock


def test_simulated_provider_is_simulated_model() -> None:
    with pytest.warns(DeprecationWarning, match="use `SimulatedModel`"):
        from specroute.engine.llm import SimulatedProvider
    assert SimulatedProvider is SimulatedModel


async def test_open_simulated_client_still_opens_a_simulated_client(
    autojump_clock: MockClock,
) -> None:
    with pytest.warns(DeprecationWarning, match=r"open_llm_client\(Provider.simulated"):
        open_simulated_client = llm_package.open_simulated_client
    transport = SimulatedTransport(SimulatedModel(output_tokens=2))
    async with open_simulated_client(transport) as llm:
        completion = await llm.complete("x", model="sim-small", max_tokens=10)
    assert completion.usage.output_tokens == 2
    assert completion.cost is not None
    assert transport.statistics().completed == 1


def test_other_missing_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no attribute 'open_anything'"):
        _ = llm_package.open_anything
    assert "SimulatedProvider" not in llm_package.__all__
