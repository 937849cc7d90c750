"""The planner as an asyncio web service: FastAPI on uvicorn, flows run through the bridge.

One trio run is hosted on uvicorn's asyncio loop for the life of the app (the lifespan opens
`asyncio_portal()`); every request runs the planner in it, so the LLM client, its provider
limits and the learned state are shared by all requests. Offline on the simulated provider.

    pip install 'specroute[service]'
    python examples/service.py                      # http://127.0.0.1:8000, scale 1.0
    curl -X POST localhost:8000/plan -H 'content-type: application/json' \\
         -d '{"user_input": "summarize open issues by label"}'
    curl -N 'localhost:8000/plan/stream?user_input=generate+changelog'   # server-sent events
    python examples/service.py --provider openai --base-url URL --model M  # OPENAI_API_KEY
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

import attrs
import cattrs
import planner  # examples/ is on sys.path when run as a script
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from specroute.engine import (
    LLMError,
    Provider,
    RunResult,
    RunTimeoutError,
    SpecrouteError,
    StepFailedError,
    StepStatus,
    asyncio_portal,
    open_llm_client,
)
from specroute.engine.llm import SimulatedModel, SimulatedTransport

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Coroutine

    from specroute.engine import AsyncioPortal


PlanMode = Literal["speculative", "parallel-start", "sequential"]  # planner.MODES


class PlanRequest(BaseModel):
    user_input: str
    mode: PlanMode = "speculative"


class ClientGoneError(Exception):
    """The client disconnected before its run finished; the run was cancelled."""


def make_provider(args: argparse.Namespace) -> tuple[Provider, str]:
    """The provider every step calls, and the model name (as examples/planner.py does)."""
    if args.provider == "simulated":
        rate = planner.TOKENS_PER_SECOND / args.scale
        speed = SimulatedModel(first_token_latency=0.0, tokens_per_second=rate)
        return Provider.simulated(SimulatedTransport(speed)), "sim-large"
    make = Provider.openai if args.provider == "openai" else Provider.anthropic
    return (make(base_url=args.base_url) if args.base_url else make()), args.model


def make_app(args: argparse.Namespace) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        provider, planner.MODEL = make_provider(args)
        planner.SCALE = args.scale
        async with asyncio_portal() as portal:
            planner.LLM = await portal.enter(open_llm_client(provider, seed=0))
            app.state.portal = portal
            yield  # leaving: runs in flight are cancelled and waited for, then the client closes

    app = FastAPI(title="specroute planner", lifespan=lifespan)

    def run_plan(
        request: Request, user_input: str, mode: str, **options: Any
    ) -> Coroutine[Any, Any, RunResult]:
        engine_mode, policy = planner.MODES[mode]
        portal: AsyncioPortal = request.app.state.portal
        return portal.run(
            planner.planner, user_input=user_input, mode=engine_mode, speculate=policy, **options
        )

    @app.post("/plan")
    async def plan(body: PlanRequest, request: Request) -> dict[str, Any]:
        """Run the planner; the answer is the run's route, outputs, wall time and waste."""
        result = await unless_disconnected(request, run_plan(request, body.user_input, body.mode))
        return summary(result)

    @app.get("/plan/stream")
    async def plan_stream(
        request: Request, user_input: str, mode: PlanMode = "speculative"
    ) -> StreamingResponse:
        """Stream `step` events as the run goes, then one `result` (or `error`) event."""
        events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        run = asyncio.ensure_future(run_plan(request, user_input, mode, observer=Progress(events)))
        run.add_done_callback(lambda _: events.put_nowait(None))
        # Starlette notices a client that left only when it next writes; a run waiting on a
        # slow model writes nothing for a while, so watch for the disconnect here as well.
        gone = asyncio.ensure_future(disconnected(request))
        gone.add_done_callback(lambda _: run.cancel())

        async def stream() -> AsyncIterator[str]:
            try:
                while (event := await events.get()) is not None:
                    yield sse("step", event)
                yield sse("result", summary(await run))
            except SpecrouteError as exc:
                yield sse("error", error_body(exc))
            finally:  # done, or Starlette closed this generator: the client went away
                gone.cancel()
                run.cancel()

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        """The portal's runs and the tasks alive on both sides (for a liveness probe)."""
        stats = request.app.state.portal.statistics()
        return {"asyncio_tasks": len(asyncio.all_tasks()), **attrs.asdict(stats)}

    @app.exception_handler(SpecrouteError)
    async def run_failed(request: Request, exc: SpecrouteError) -> JSONResponse:
        status = 504 if isinstance(exc, RunTimeoutError) else 502 if upstream(exc) else 500
        return JSONResponse(error_body(exc), status_code=status)

    @app.exception_handler(ClientGoneError)
    async def client_gone(request: Request, exc: ClientGoneError) -> JSONResponse:
        return JSONResponse({"error": "client closed the request"}, status_code=499)

    return app


async def unless_disconnected(request: Request, run: Coroutine[Any, Any, RunResult]) -> RunResult:
    """Await the run, cancelling it if the client goes away first (uvicorn would not)."""
    task = asyncio.ensure_future(run)
    gone = asyncio.ensure_future(disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        task.cancel()  # nothing if it finished; else the run is cancelled in trio
        await asyncio.wait({task, gone})
    if task.cancelled():
        raise ClientGoneError
    return task.result()


async def disconnected(request: Request) -> None:
    # The body was read already, so the next ASGI message is the client leaving.
    while (await request.receive())["type"] != "http.disconnect":
        pass


class Progress:
    """A `RunObserver` that hands step events to the response; trio runs on the loop's thread."""

    def __init__(self, events: asyncio.Queue[dict[str, Any] | None]) -> None:
        self.events = events

    def step_started(self, step: str, branch: str, speculative: bool) -> None:
        self.events.put_nowait({"step": step, "branch": branch, "speculative": speculative})

    def step_finished(self, step: str, branch: str, status: StepStatus, seconds: float) -> None:
        self.events.put_nowait({"step": step, "branch": branch, "status": status.value,
                                "ms": round(seconds * 1000, 1)})  # fmt: skip


def summary(result: RunResult) -> dict[str, Any]:
    # Outputs may be typed (the planner's `Workflow`): cattrs makes them JSON data.
    outputs: dict[str, Any] = cattrs.unstructure(dict(result.outputs))
    return {"route": result.route, "outputs": outputs,
            "wall_ms": round(result.wall_time * 1000, 1),
            "wasted_ms": round(result.wasted_time * 1000, 1),
            "wasted_cost": result.wasted_cost}  # fmt: skip


def upstream(exc: BaseException) -> bool:
    return isinstance(exc.__cause__, LLMError)


def error_body(exc: SpecrouteError) -> dict[str, Any]:
    """What failed, in words the provider's answer was scrubbed into; never the request."""
    cause = exc.__cause__
    return {
        "error": type(exc).__name__,
        "message": str(exc),
        "step": exc.step if isinstance(exc, StepFailedError) else None,
        "cause": None if cause is None else f"{type(cause).__name__}: {cause}",
    }


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every latency")
    parser.add_argument("--provider", choices=["simulated", "openai", "anthropic"],
                        default="simulated", help="call a real model for every step")  # fmt: skip
    parser.add_argument("--base-url", help="the provider's API root (a local vLLM, Ollama...)")
    parser.add_argument("--model", default="gpt-4o-mini", help="the model every step calls")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    # Keep-alive longer than a load balancer's idle timeout (and than a busy loop's lag), so
    # the server never closes a connection a client is about to reuse.
    uvicorn.run(make_app(arguments), host=arguments.host, port=arguments.port,
                log_level="warning", timeout_keep_alive=75)  # fmt: skip
