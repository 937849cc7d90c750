"""Steps: an `async def` that reads values by parameter name and writes one value."""

from __future__ import annotations

import inspect
import keyword
import math
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from operator import itemgetter
from types import MappingProxyType
from typing import Any, cast, overload

import attrs
from specroute.cache import CacheOptions, StepIdentity
from specroute.cache._key import is_never_encodable
from specroute.routes import ConfigurationError, ConfigurationTypeError, StepDefinitionError

from ._stream import DEFAULT_STREAM_BUFFER, reading_streams, stream_name

__all__ = ["DEFAULT_EFFECT_GRACE", "Step", "StepOptions", "step"]

StepFunction = Callable[..., Awaitable[Any]]
# What `@step` takes: an `async def`, or an async generator for a streamed output (the
# engine calls `Step.fn` for either; a streamed step's call gives the generator).
StepDefinition = Callable[..., Awaitable[Any]] | Callable[..., AsyncIterator[Any]]

DEFAULT_EFFECT_GRACE = 30.0
"""Seconds an effect that has started may go on running once its run is cancelled."""


def _number_or_none(value: Any, rule: str, ok: bool, attribute: attrs.Attribute[Any]) -> None:
    message = f"`{attribute.name}` must be None or a number {rule}, got {value!r}"
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ConfigurationTypeError(message)
    if not ok:
        raise ConfigurationError(message)


def _positive_or_none(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _number_or_none(value, "> 0", isinstance(value, int | float) and value > 0, attribute)


def _non_negative_or_none(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _number_or_none(value, ">= 0", isinstance(value, int | float) and value >= 0, attribute)


def _grace(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    message = f"`{attribute.name}` must be a number > 0 of seconds (not inf), got {value!r}"
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ConfigurationTypeError(message)
    if not 0 < value < math.inf:  # also refuses nan
        raise ConfigurationError(message)


def _identifier_or_none(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    message = f"`{attribute.name}` must be None or an identifier, got {value!r}"
    if not isinstance(value, str):
        raise ConfigurationTypeError(message)
    if not value.isidentifier():
        raise ConfigurationError(message)


def _bool(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigurationTypeError(f"`{attribute.name}` must be a bool, got {value!r}")


def _cache_options_or_none(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, CacheOptions):
        raise ConfigurationTypeError(
            f"`{attribute.name}` must be None or a CacheOptions, got {value!r}"
        )


def _callable_or_none(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not callable(value):
        raise ConfigurationTypeError(f"`{attribute.name}` must be None or callable, got {value!r}")


def _names(option: str, value: Any) -> tuple[str, ...]:
    """A list of input names as a tuple; a lone string would be read letter by letter."""
    if isinstance(value, str):
        raise ConfigurationTypeError(
            f"`{option}` must be a list of input names, got the string {value!r}; write [{value!r}]"
        )
    try:
        names = tuple(value)
    except TypeError:
        raise ConfigurationTypeError(
            f"`{option}` must be a list of input names, got {value!r}"
        ) from None
    for name in names:
        if not isinstance(name, str):
            raise ConfigurationTypeError(
                f"`{option}` must be a list of input names, got {value!r} (holding {name!r})"
            )
    return names


def _input_names(value: Any) -> tuple[str, ...] | None:
    """`cache_inputs` as a tuple (None: all inputs)."""
    return None if value is None else _names("cache_inputs", value)


def _stream_names(value: Any) -> tuple[str, ...]:
    return _names("streams", value)


def _buffer(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    message = f"`{attribute.name}` must be an int >= 1 of items, got {value!r}"
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigurationTypeError(message)
    if value < 1:
        raise ConfigurationError(message)


@attrs.frozen(kw_only=True)
class StepOptions:
    """How the engine treats one step.

    Args:
        output: The name the step's value is written under (default: the step's name).
        timeout: Seconds the step may run before it fails with `StepTimeoutError`.
        effect: The step has side effects: inside a speculative branch it waits until the
            branch is confirmed, so it never runs for a branch that loses; and once it has
            started it runs to its end even if the run is cancelled (from outside, by its
            `timeout`, or because another step failed), for at most `effect_grace` seconds
            after the cancellation.
        effect_grace: Seconds an effect that has started may go on running once its run is
            cancelled (default `DEFAULT_EFFECT_GRACE`, 30). Past it the effect is cancelled
            and its trace entry says `cancelled`, with an `error` naming its grace. Only
            read for `effect=True` steps.
        estimated_seconds: Expected duration, for speculation policies.
        estimated_dollars: Expected cost, for speculation policies.
        cache: Serve the step from the run's cache (exact, semantic or both); see
            `specroute.cache.CacheOptions`. Ignored by runs given no `cache=`.
        cache_inputs: The inputs that make up the cache key (default: all). Only leave out
            inputs that never change the answer.
        fallback: Called with the exception when the step raises (and with the step's
            inputs as a second argument, if it takes two); its return value stands in for
            the step's (the trace shows `recovered`, and the run goes on). For a step with a
            safe default, such as retrieval that may come back empty. For a streamed step it
            returns the items that stand in for the stream, and it applies only while no
            item has been produced (readers never see two streams spliced).
        streams: The inputs this step reads as streams (each a streamed step's output): it
            starts at the producer's first item and gets a `StreamReader` to `async for`
            over, instead of waiting for the whole value.
        stream_buffer: For a streamed step (an `async def` that yields): how many items it
            may run ahead of its slowest reader that is iterating (default 64).
        collect: For a streamed step: turns its list of items into its whole value, what
            readers of the whole value get (default: the list; `"".join` for text).

    Raises:
        ConfigurationError: An option out of range (`timeout=-1`, `output="not an id"`);
            `ConfigurationTypeError` for one of the wrong kind (`timeout="5"`,
            `cache_inputs="text"`, which would be read letter by letter).
            `effect_grace` must be a finite number > 0.
    """

    output: str | None = attrs.field(default=None, validator=_identifier_or_none)
    timeout: float | None = attrs.field(default=None, validator=_positive_or_none)
    effect: bool = attrs.field(default=False, validator=_bool)
    effect_grace: float = attrs.field(default=DEFAULT_EFFECT_GRACE, validator=_grace)
    estimated_seconds: float | None = attrs.field(default=None, validator=_non_negative_or_none)
    estimated_dollars: float | None = attrs.field(default=None, validator=_non_negative_or_none)
    cache: CacheOptions | None = attrs.field(default=None, validator=_cache_options_or_none)
    cache_inputs: tuple[str, ...] | None = attrs.field(default=None, converter=_input_names)
    fallback: Callable[..., Any] | None = attrs.field(default=None, validator=_callable_or_none)
    streams: tuple[str, ...] = attrs.field(default=(), converter=_stream_names)
    stream_buffer: int = attrs.field(default=DEFAULT_STREAM_BUFFER, validator=_buffer)
    collect: Callable[[list[Any]], Any] | None = attrs.field(
        default=None, validator=_callable_or_none
    )


DEFAULT_OPTIONS = StepOptions()


@attrs.frozen(eq=False, repr=False)
class Step:
    """A named `async def` in a flow. Build one with the `step` decorator.

    A step reads the values named by its parameters and writes its return value under
    `output`. Parameters with defaults are optional inputs: when nothing produces the value
    and the run does not give it, the default is used. The same `Step` may appear in several
    branches of one router (they never both win), but only once per flow.

    Attributes:
        name: The step's name, used in traces, errors and speculation policies.
        fn: The wrapped coroutine function.
        options: The step's `StepOptions`.
        params: The names of the values it reads: its parameter names, except that an
            input read as a stream is read under its stream's name (`"answer:stream"`).
        optional: The parameters that have defaults.
        streamed: The function is an async generator: its output is a stream.
        output: The name its value is written under (`options.output`, else its name).
    """

    name: str
    fn: StepFunction
    options: StepOptions
    params: tuple[str, ...]
    optional: frozenset[str]
    fallback_takes_inputs: bool = False
    streamed: bool = False
    # Whose cache entries it reads and writes (None: it is not cached); made once here,
    # not per lookup.
    cache_identity: StepIdentity | None = attrs.field(init=False, repr=False)
    # The name this step's value is written under: made once here (a property would be
    # one more call on every step of every run).
    output: str = attrs.field(init=False, repr=False, eq=False)
    # How a plain step's inputs are passed: `pick(values)` gives them in `params` order, to
    # pass by position (one value, or a tuple of several when `spread`), which costs less
    # than by name. None: by name (see `takes_by_position`).
    pick: Callable[[Mapping[str, Any]], Any] | None = attrs.field(init=False, repr=False, eq=False)
    spread: bool = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        cache = self.options.cache
        identity = None if cache is None else StepIdentity.of(self.name, self.fn, cache.name)
        object.__setattr__(self, "cache_identity", identity)
        object.__setattr__(self, "output", self.options.output or self.name)
        by_position = self.params and takes_by_position(self.fn, self.params)
        object.__setattr__(self, "pick", itemgetter(*self.params) if by_position else None)
        object.__setattr__(self, "spread", len(self.params) > 1)

    async def __call__(self, **values: Any) -> Any:
        """Call the step's function directly, outside any flow (handy in unit tests)."""
        return await self.fn(**values)

    def __repr__(self) -> str:
        return f"<Step {self.name!r} reads {list(self.params)} writes {self.output!r}>"


def takes_by_position(fn: object, params: tuple[str, ...]) -> bool:
    """Whether `fn`'s own code takes exactly `params`, in that order, as its parameters
    (after `self` for a bound method): then passing them by position is the same call as
    by name. Only a plain function's code says so; a wrapper or a `__signature__` may
    describe parameters its code does not take by position."""
    bound = isinstance(fn, types.MethodType)
    function = fn.__func__ if bound else fn  # type: ignore[attr-defined]
    if not isinstance(function, types.FunctionType):
        return False
    code = function.__code__
    names = code.co_varnames[bound : code.co_argcount]
    return code.co_kwonlyargcount == 0 and code.co_posonlyargcount == 0 and names == params


def _make_step(fn: StepDefinition, name: str | None, options: StepOptions) -> Step:
    label = name or getattr(fn, "__name__", None) or repr(fn)
    streamed = inspect.isasyncgenfunction(fn)
    if not (inspect.iscoroutinefunction(fn) or streamed):
        raise StepDefinitionError(
            f"step {label!r}: the function must be an `async def` (a coroutine function, or "
            f"an async generator for a streamed output), got {type(fn).__name__} {fn!r}; "
            f"wrap sync code with `trio.to_thread.run_sync`"
        )
    if not label.isidentifier() or keyword.iskeyword(label):
        raise StepDefinitionError(f"step name must be an identifier, got {label!r}")
    params: list[str] = []
    optional: set[str] = set()
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise StepDefinitionError(
                f"step {label!r}: parameter {param.name!r} is variadic; a step reads values "
                f"by parameter name, so name each value it reads"
            )
        if param.kind is param.POSITIONAL_ONLY:
            raise StepDefinitionError(
                f"step {label!r}: parameter {param.name!r} is positional-only; the engine "
                f"passes values by name, so remove the `/`"
            )
        params.append(param.name)
        if param.default is not param.empty:
            optional.add(param.name)
    if options.cache is not None:
        _check_cacheable(label, fn, params, options)
    if streamed and options.effect:
        raise StepDefinitionError(
            f"step {label!r}: an effect cannot stream its output (readers would act on "
            f"items of an effect that may not finish); return the whole value"
        )
    for name_read in options.streams:
        if name_read not in params:
            raise StepDefinitionError(
                f"step {label!r}: `streams` names input {name_read!r}, but the step reads "
                f"only {params}"
            )
        if options.cache is not None:
            raise StepDefinitionError(
                f"step {label!r}: input {name_read!r} is read as a stream, which cannot be "
                f"part of a cache key; read it whole to cache this step"
            )
    takes_inputs = False
    if options.fallback is not None:
        arity = len(inspect.signature(options.fallback).parameters)
        if arity not in (1, 2):
            raise StepDefinitionError(
                f"step {label!r}: `fallback` must take the exception, or the exception and "
                f"the step's inputs, but it takes {arity} parameters"
            )
        takes_inputs = arity == 2
    if options.streams:
        fn = reading_streams(fn, options.streams, streamed)
        params = [stream_name(p) if p in options.streams else p for p in params]
        optional = {stream_name(p) if p in options.streams else p for p in optional}
    call = cast("StepFunction", fn)  # a streamed step's call gives its generator
    return Step(label, call, options, tuple(params), frozenset(optional), takes_inputs, streamed)


def _check_cacheable(
    label: str, fn: StepDefinition, params: list[str], options: StepOptions
) -> None:
    """Refuse, when the step is made, a cache setting that could only fail during a run."""
    assert options.cache is not None
    keyed = options.cache_inputs if options.cache_inputs is not None else tuple(params)
    wanted = [*keyed, *([options.cache.semantic] if options.cache.semantic else [])]
    for name in wanted:
        if name not in params:
            raise StepDefinitionError(
                f"step {label!r}: cache option names input {name!r}, but the step reads only "
                f"{params}"
            )
    try:
        annotations = inspect.signature(fn, eval_str=True).parameters
    except (NameError, TypeError):
        return  # annotations that do not resolve here say nothing either way
    for name in keyed:
        annotation = annotations[name].annotation
        if annotation is not inspect.Parameter.empty and is_never_encodable(annotation):
            raise StepDefinitionError(
                f"step {label!r}: input {name!r} is annotated "
                f"{annotations[name].annotation!r}, which can never be part of a cache key; "
                f"leave it out with `cache_inputs=` or pass plain data"
            )


@overload
def step(fn: StepDefinition, /) -> Step: ...


@overload
def step(
    *,
    name: str | None = None,
    output: str | None = None,
    timeout: float | None = None,
    effect: bool = False,
    effect_grace: float | None = None,
    estimated_seconds: float | None = None,
    estimated_dollars: float | None = None,
    cache: CacheOptions | None = None,
    cache_inputs: tuple[str, ...] | None = None,
    fallback: Callable[..., Any] | None = None,
    streams: Sequence[str] | None = None,
    stream_buffer: int | None = None,
    collect: Callable[[list[Any]], Any] | None = None,
    options: StepOptions | None = None,
) -> Callable[[StepDefinition], Step]: ...


def step(
    fn: StepDefinition | None = None,
    /,
    *,
    name: str | None = None,
    output: str | None = None,
    timeout: float | None = None,
    effect: bool = False,
    effect_grace: float | None = None,
    estimated_seconds: float | None = None,
    estimated_dollars: float | None = None,
    cache: CacheOptions | None = None,
    cache_inputs: tuple[str, ...] | None = None,
    fallback: Callable[..., Any] | None = None,
    streams: Sequence[str] | None = None,
    stream_buffer: int | None = None,
    collect: Callable[[list[Any]], Any] | None = None,
    options: StepOptions | None = None,
) -> Step | Callable[[StepDefinition], Step]:
    """Turn an `async def` into a `Step`; use bare (`@step`) or with options (`@step(...)`).

    Args:
        fn: The coroutine function (when used bare).
        name: The step's name (default: the function's name).
        output: See `StepOptions.output`.
        timeout: See `StepOptions.timeout`.
        effect: See `StepOptions.effect`.
        effect_grace: See `StepOptions.effect_grace` (default `DEFAULT_EFFECT_GRACE`).
        estimated_seconds: See `StepOptions.estimated_seconds`.
        estimated_dollars: See `StepOptions.estimated_dollars`.
        cache: See `StepOptions.cache`.
        cache_inputs: See `StepOptions.cache_inputs`.
        fallback: See `StepOptions.fallback`.
        streams: See `StepOptions.streams`.
        stream_buffer: See `StepOptions.stream_buffer`.
        collect: See `StepOptions.collect`.
        options: A ready `StepOptions`; not allowed together with the single options.

    Returns:
        The `Step`, or a decorator that makes one.

    Raises:
        StepDefinitionError: The function is not `async def`, or takes `*args`/`**kwargs`
            or positional-only parameters.
    """
    singles: Mapping[str, Any] = MappingProxyType(
        {
            key: value
            for key, value in {
                "output": output,
                "timeout": timeout,
                "effect": effect or None,
                "effect_grace": effect_grace,
                "estimated_seconds": estimated_seconds,
                "estimated_dollars": estimated_dollars,
                "cache": cache,
                "cache_inputs": cache_inputs,
                "fallback": fallback,
                "streams": streams,
                "stream_buffer": stream_buffer,
                "collect": collect,
            }.items()
            if value is not None
        }
    )
    if options is not None and singles:
        raise StepDefinitionError(
            f"pass either `options` or single options ({', '.join(singles)}), not both"
        )
    if options is None:
        options = StepOptions(**singles) if singles else DEFAULT_OPTIONS

    def decorate(fn: StepDefinition) -> Step:
        return _make_step(fn, name, options)

    if fn is not None:
        return decorate(fn)
    return decorate
