"""A predictor that asks a cheap model which branch a request needs."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import attrs
from specroute.routes import Prediction

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from specroute.routes import RouterView

    from .llm import LLMClient

__all__ = ["ModelPredictor"]


def default_prompt(router: RouterView, inputs: Mapping[str, Any]) -> str:
    """Ask for one label, given the router's inputs."""
    facts = "\n".join(f"{name}: {value}" for name, value in inputs.items())
    labels = ", ".join(router.labels)
    return (
        f"A router named {router.name!r} must choose one of: {labels}.\n{facts}\n"
        f"Answer with the label only."
    )


@attrs.frozen(eq=False)
class ModelPredictor:
    """Predicts a router's label by asking a (cheap, fast) model through the LLM client.

    The label the model names gets a probability calibrated from the model's record for
    this router: (right + 1) / (asked + 2), so a model that guesses badly is soon trusted
    less. The record lives in the run's learned state (`RouterView.memory`), not here. The
    call is an ordinary LLM call: the engine schedules the prediction like a step, so the
    call shows in the trace, is cancelled if the router answers first, and counts as waste
    when the guess was wrong.

    Args:
        client: The LLM client to ask.
        model: The model to ask.
        prompt: Builds the question from the router and its inputs.
        max_tokens: Room for the answer.
    """

    client: LLMClient
    model: str
    prompt: Callable[[RouterView, Mapping[str, Any]], str] = default_prompt
    max_tokens: int = 8

    @staticmethod
    def confidence(router: RouterView) -> float:
        """The probability given to the model's answer for `router`, from its record."""
        right: int = router.memory.get("right", 0)
        asked: int = router.memory.get("asked", 0)
        return (right + 1) / (asked + 2)

    async def predict(self, router: RouterView, inputs: Mapping[str, Any]) -> Prediction:
        """Ask the model; the first label its answer names is the prediction."""
        answer = await self.client.complete(
            self.prompt(router, inputs), model=self.model, max_tokens=self.max_tokens
        )
        words = set(re.findall(r"[\w-]+", answer.text.lower()))
        label = next((label for label in router.labels if label.lower() in words), None)
        if label is None:
            return Prediction(probabilities={}, source="model")
        return Prediction(probabilities={label: self.confidence(router)}, source="model")

    def observe(self, router: RouterView, inputs: Mapping[str, Any], label: str) -> None:
        """Score the model's answer for this execution (`router.prediction`) against `label`."""
        guessed = None if router.prediction is None else router.prediction.likeliest
        if guessed is not None:
            memory = router.memory
            memory["asked"] = memory.get("asked", 0) + 1
            memory["right"] = memory.get("right", 0) + (guessed == label)
