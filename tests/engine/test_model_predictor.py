"""The model predictor asks a model which label fits, and trusts it as far as it was right."""

from __future__ import annotations

import json

import attrs
import httpx
from specroute.engine import ModelPredictor
from specroute.engine.llm import Provider, open_llm_client
from specroute.routes import RouterView

ROUTER = RouterView(name="discovery", labels=("reuse", "generate"), branch_sizes={})


def answers_with(text: str) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        asked = json.loads(request.content)["messages"][0]["content"]
        assert "reuse, generate" in asked  # the prompt lists the labels
        body = {
            "choices": [{"message": {"role": "assistant", "content": text}, "index": 0,
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 1, "total_tokens": 31},
        }  # fmt: skip
        return httpx.Response(200, json=body)

    return httpx.MockTransport(handler)


async def test_answer_becomes_a_calibrated_prediction() -> None:
    provider = Provider.openai(api_key="sk-test", base_url="http://model.test/v1")
    async with open_llm_client(provider, transport=answers_with("Generate.")) as llm:
        predictor = ModelPredictor(llm, model="gpt-4o-mini")
        router = attrs.evolve(ROUTER, memory={})
        for real in ("generate", "generate", "reuse"):
            inputs = {"user_input": "summarize issues"}
            prediction = await predictor.predict(router, inputs)
            assert prediction.likeliest == "generate"
            # The engine tells the predictor what it predicted for this execution.
            predictor.observe(attrs.evolve(router, prediction=prediction), inputs, real)
    assert predictor.confidence(router) == (2 + 1) / (3 + 2)
    # The record is in the router's memory (the run's learned state), not the predictor.
    assert router.memory == {"asked": 3, "right": 2}


async def test_answer_naming_no_label_predicts_nothing() -> None:
    provider = Provider.openai(api_key="sk-test", base_url="http://model.test/v1")
    async with open_llm_client(provider, transport=answers_with("I am not sure")) as llm:
        prediction = await ModelPredictor(llm, model="gpt-4o-mini").predict(ROUTER, {"x": 1})
    assert prediction.probabilities == {}
