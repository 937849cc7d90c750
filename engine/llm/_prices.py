"""Prices per model, in dollars per million tokens, and the arithmetic that turns usage into cost.

The built-in table (`DEFAULT_PRICES`) holds list prices published by OpenAI and Anthropic as of
`PRICES_AS_OF`; prices change, so pass your own `PriceTable` (or extend this one with
`with_prices`) when it matters. A model missing from the table costs `None`, never a guess.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._usage import Usage

from ._checks import non_negative

__all__ = [
    "DEFAULT_PRICES",
    "PRICES_AS_OF",
    "ModelPrice",
    "PriceTable",
    "UnknownModelPriceWarning",
]

#: When the built-in prices were copied from the providers' price pages.
PRICES_AS_OF = "2025-06"


class UnknownModelPriceWarning(UserWarning):
    """A call used a model with no price, so its cost is `None`; add it to the `PriceTable`."""


@attrs.frozen(kw_only=True)
class ModelPrice:
    """The price of one model.

    Attributes:
        input_per_million: Dollars per million input tokens.
        output_per_million: Dollars per million output tokens.
    """

    input_per_million: float = attrs.field(validator=non_negative)
    output_per_million: float = attrs.field(validator=non_negative)

    def cost(self, usage: Usage) -> float:
        """Return the dollars `usage` costs at this price."""
        return (
            usage.input_tokens * self.input_per_million
            + usage.output_tokens * self.output_per_million
        ) / 1_000_000


def _freeze_prices(prices: Mapping[str, ModelPrice]) -> Mapping[str, ModelPrice]:
    return MappingProxyType(dict(prices))


def _check_prices(_: object, attribute: attrs.Attribute[Any], value: Mapping[Any, Any]) -> None:
    for model, price in value.items():
        if not isinstance(model, str) or not isinstance(price, ModelPrice):
            raise TypeError(
                f"`{attribute.name}` must map model names to `ModelPrice`, got {model!r}: {price!r}"
            )


@attrs.frozen(kw_only=True)
class PriceTable:
    """Model name -> `ModelPrice`.

    A model matches its own entry, or else the longest entry it extends with a `-suffix`, so
    a dated snapshot (`gpt-4o-2024-08-06`) takes its family's price (`gpt-4o`), while
    `gpt-4o-mini` keeps its own.

    Attributes:
        prices: Model name -> price.
    """

    prices: Mapping[str, ModelPrice] = attrs.field(
        converter=_freeze_prices, validator=_check_prices
    )

    def price_of(self, model: str) -> ModelPrice | None:
        """Return the price of `model`, or `None` if the table has none.

        Args:
            model: The model name as sent to the provider.

        Returns:
            Its price, or `None`.
        """
        exact = self.prices.get(model)
        if exact is not None:
            return exact
        family = max(
            (name for name in self.prices if model.startswith(f"{name}-")), key=len, default=None
        )
        return None if family is None else self.prices[family]

    def cost(self, model: str, usage: Usage) -> float | None:
        """Return the dollars `usage` of `model` costs, or `None` if the model has no price."""
        price = self.price_of(model)
        return None if price is None else price.cost(usage)

    def with_prices(self, prices: Mapping[str, ModelPrice]) -> PriceTable:
        """Return a table with `prices` added, replacing entries of the same name."""
        return PriceTable(prices={**self.prices, **prices})


def _price(input_per_million: float, output_per_million: float) -> ModelPrice:
    return ModelPrice(input_per_million=input_per_million, output_per_million=output_per_million)


#: List prices as of `PRICES_AS_OF` (standard tier, no batch or cache discounts).
DEFAULT_PRICES = PriceTable(
    prices={
        "gpt-4o": _price(2.50, 10.00),
        "gpt-4o-mini": _price(0.15, 0.60),
        "gpt-4.1": _price(2.00, 8.00),
        "gpt-4.1-mini": _price(0.40, 1.60),
        "gpt-4.1-nano": _price(0.10, 0.40),
        "o3-mini": _price(1.10, 4.40),
        "o4-mini": _price(1.10, 4.40),
        "claude-3-haiku": _price(0.25, 1.25),
        "claude-3-5-haiku": _price(0.80, 4.00),
        "claude-3-5-sonnet": _price(3.00, 15.00),
        "claude-3-7-sonnet": _price(3.00, 15.00),
        "claude-sonnet-4": _price(3.00, 15.00),
        "claude-opus-4": _price(15.00, 75.00),
    }
)
