"""Cache keys: a stable digest of a step's identity, its version, what its answer depends on,
a namespace and canonical inputs.

The encoding is tagged and length-prefixed, so two distinct values never encode to the same
bytes. Distinct means: values of different exact types, or of one type but different as
data. So `1`, `1.0`, `True` and `"1"` differ, as do a list and a tuple with the same items,
`bytes` and `bytearray`, `set` and `frozenset`, `dict` and `OrderedDict` (or any other
mapping type), and a builtin and its subclass (a `NamedTuple` and a tuple, a `str` subclass
and a `str`): a subclass is encoded as its qualified class name, then its builtin content.
Within a type, `0.0` and `-0.0` differ and every NaN is the same NaN. A mapping (other
than an `OrderedDict`) and a set are sorted by the encoding of their items, so key order
never matters; an `OrderedDict`'s order is part of its value, as it is for its `==`. What a
mapping type holds beside its items (a `defaultdict`'s factory) is not part of the key.

The digest is blake2b, which does not depend on Python's salted `hash()`, so a key is the
same in every process.
"""

from __future__ import annotations

import collections
import collections.abc
import dataclasses
import enum
import hashlib
import inspect
import types
import typing
from typing import TYPE_CHECKING, Any

import attrs

from ._errors import UnencodableInputError
from ._validators import check_namespace

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["CacheKey", "StepIdentity", "is_never_encodable", "make_key"]

# Bump when the encoding changes, so old digests can never match new ones.
_KEY_FORMAT = b"specroute.cache.key/2"
_DIGEST_SIZE = 16
_NO_DEPENDENCIES: Mapping[str, Any] = types.MappingProxyType({})


@attrs.frozen
class StepIdentity:
    """Which step a cache entry belongs to: a name, and the function behind it.

    Two steps share cache entries only when their identities are equal. A step's own
    identity names its function (`StepIdentity.of`), so two functions that happen to share
    a step name never share entries; an explicit cache name (`CacheOptions(name=...)`) is an
    identity without a function, shared by every step that gives it.

    Args:
        name: The step's name, or the explicit cache name.
        function: The function's `module.qualname` (`None` for an explicit cache name).
    """

    name: str
    function: str | None = None

    @classmethod
    def of(cls, name: str, function: Callable[..., Any], cache_name: str | None) -> StepIdentity:
        """The identity of a step: its explicit cache name, else its name and its function.

        Args:
            name: The step's name; factory-made steps share a qualified name, so the name
                is part of the identity.
            function: The step's function (its module and qualified name are used).
            cache_name: The step's explicit cache name (`CacheOptions.name`), if any.

        Returns:
            The identity.
        """
        if cache_name is not None:
            return cls(cache_name)
        module = getattr(function, "__module__", None) or "?"
        qualname = getattr(function, "__qualname__", None) or type(function).__qualname__
        return cls(name, f"{module}.{qualname}")

    def __str__(self) -> str:
        return self.name if self.function is None else f"{self.name} ({self.function})"


@attrs.frozen
class CacheKey:
    """The identity of one cached step result.

    Two keys are equal only when step identity, version, dependencies, namespace and inputs
    all match. Build one with `make_key`, not directly.

    Args:
        step: The step's name (or explicit cache name), for messages.
        version: The step's version string (bumped when its prompt changes).
        namespace: The tenant; entries in different namespaces never see each other.
        partition: Hex digest of everything but the inputs (identity, version,
            dependencies, namespace): only keys with one partition may match by meaning.
        digest: Hex blake2b digest of all of the above and the canonical inputs.
    """

    step: str
    version: str
    namespace: str
    partition: str
    digest: str

    def __str__(self) -> str:
        return f"{self.step}@{self.version}[{self.namespace}]:{self.digest[:12]}"


def make_key(
    step: StepIdentity | str,
    version: str,
    namespace: str,
    inputs: Mapping[str, Any],
    *,
    depends_on: Mapping[str, Any] | None = None,
) -> CacheKey:
    """Make the cache key of a step called with `inputs`.

    Args:
        step: The step's identity; a `str` is an identity without a function (as an
            explicit cache name), shared by every step that passes it.
        version: The step's version string.
        namespace: The tenant, a hard partition of the cache.
        inputs: The step's arguments by name. Values may be `None`, `bool`, `int`, `float`,
            `str`, `bytes`, `bytearray`, enum members, lists, tuples, sets, frozensets,
            mappings, attrs instances and dataclass instances, nested in any way, and
            subclasses of these builtins (see the module docstring for what is distinct).
        depends_on: What else the answer depends on (`CacheOptions.depends_on`: the model,
            its settings, tool definitions); encoded like an input.

    Returns:
        The key, equal for equal inputs whatever the order of mapping keys.

    Raises:
        UnencodableInputError: An input (or something inside it) has no canonical encoding;
            the message names the step and the argument path.
        CacheConfigError: `namespace` is not a non-empty `str`.
    """
    check_namespace(namespace)
    identity = step if isinstance(step, StepIdentity) else StepIdentity(step)
    encoder = _Encoder(identity.name)
    out = bytearray(_KEY_FORMAT)
    for text in (identity.name, identity.function, version, namespace):
        encoder.encode(text, out, "")
    encoder.encode_arguments(depends_on or _NO_DEPENDENCIES, out, "depends_on")
    hasher = hashlib.blake2b(out, digest_size=_DIGEST_SIZE)
    partition = hasher.hexdigest()
    arguments = bytearray()
    encoder.encode_arguments(inputs, arguments)
    hasher.update(arguments)
    return CacheKey(identity.name, version, namespace, partition, hasher.hexdigest())


def check_encodable(values: Mapping[str, Any], what: str) -> None:
    """Raise `UnencodableInputError` if `values` (a mapping of names) cannot be in a key.

    Args:
        values: The mapping, such as `CacheOptions.depends_on`.
        what: Its name, for the message.
    """
    _Encoder(what, f"`{what}`").encode_arguments(values, bytearray(), what)


def _length(n: int) -> bytes:
    return n.to_bytes(8, "big")


# The builtin types the encoder knows; an instance of a subclass of one of them (or of
# another mapping type) is encoded as its class name, then its builtin content.
_EXACT_CONTAINERS = frozenset({list, tuple, dict, collections.OrderedDict, set, frozenset})
_BUILTIN_KINDS: tuple[type, ...] = (
    int,
    float,
    str,
    bytes,
    bytearray,
    list,
    tuple,
    set,
    frozenset,
    collections.abc.Mapping,
)


class _Encoder:
    """Writes the canonical encoding of values; remembers the containers it is inside."""

    def __init__(self, step: str, where: str | None = None) -> None:
        self._step = step
        self._where = where if where is not None else f"step {step!r}"
        self._open: set[int] = set()

    def encode_arguments(self, inputs: Mapping[str, Any], out: bytearray, prefix: str = "") -> None:
        items = []
        for name, value in inputs.items():
            path = f"{prefix}[{name!r}]" if prefix else name
            if not isinstance(name, str):
                raise self._error(path, "argument names must be str")
            item = bytearray()
            self.encode(name, item, path)
            self.encode(value, item, path)
            items.append(bytes(item))
        self._write_sorted(b"A", items, out)

    def encode(self, value: object, out: bytearray, path: str) -> None:
        # Exact types first: the common case costs one lookup. bool and enum members are
        # also ints or strs, so they are tested before any isinstance.
        kind = type(value)
        if value is None:
            out += b"N"
        elif value is True:
            out += b"T"
        elif value is False:
            out += b"F"
        elif kind is str:
            self._write_text(b"s", value, out)  # type: ignore[arg-type]
        elif kind is int:
            self._write_text(b"i", str(value), out)
        elif kind is float:
            # repr round-trips every float exactly, and names nan and inf.
            self._write_text(b"f", repr(value), out)
        elif kind is bytes or kind is bytearray:
            data = bytes(value)  # type: ignore[call-overload]
            out += (b"b" if kind is bytes else b"B") + _length(len(data)) + data
        elif isinstance(value, enum.Enum):
            self._write_text(b"e", _qualified_name(kind) + "." + value.name, out)
        elif kind in _EXACT_CONTAINERS:
            self._encode_container(value, out, path)
        elif isinstance(value, _BUILTIN_KINDS):
            self._write_text(b"c", _qualified_name(kind), out)
            self._encode_builtin_content(value, out, path)
        else:
            self._encode_container(value, out, path)

    def _encode_builtin_content(self, value: object, out: bytearray, path: str) -> None:
        """A builtin's subclass, after its class name: the content of its builtin base."""
        if isinstance(value, int):
            self.encode(int.__index__(value), out, path)
        elif isinstance(value, float):
            self.encode(float.__float__(value), out, path)
        elif isinstance(value, str):
            self.encode(str.__str__(value), out, path)
        elif isinstance(value, bytes | bytearray):
            self.encode(bytes(value), out, path)
        else:
            self._encode_container(value, out, path)

    def _encode_container(self, value: object, out: bytearray, path: str) -> None:
        if id(value) in self._open:
            raise self._error(path, "the value contains itself")
        self._open.add(id(value))
        try:
            self._encode_open_container(value, out, path)
        finally:
            self._open.discard(id(value))

    def _encode_open_container(self, value: object, out: bytearray, path: str) -> None:
        if isinstance(value, list | tuple):
            out += (b"l" if isinstance(value, list) else b"t") + _length(len(value))
            for index, item in enumerate(value):
                self.encode(item, out, f"{path}[{index}]")
        elif isinstance(value, collections.OrderedDict):
            # Its order is part of its value (`==` between OrderedDicts compares it).
            out += b"o" + _length(len(value))
            for key, item in value.items():
                self.encode(key, out, f"{path}[{key!r}]")
                self.encode(item, out, f"{path}[{key!r}]")
        elif isinstance(value, collections.abc.Mapping):
            items = []
            for key, item in value.items():
                encoded = bytearray()
                self.encode(key, encoded, f"{path}[{key!r}]")
                self.encode(item, encoded, f"{path}[{key!r}]")
                items.append(bytes(encoded))
            self._write_sorted(b"d", items, out)
        elif isinstance(value, set | frozenset):
            elements = []
            for item in value:
                encoded = bytearray()
                self.encode(item, encoded, f"{path}{{{item!r}}}")
                elements.append(bytes(encoded))
            self._write_sorted(b"S" if isinstance(value, set) else b"Z", elements, out)
        elif attrs.has(type(value)):
            names = [field.name for field in attrs.fields(type(value))]  # type: ignore[arg-type]
            self._encode_record(value, names, out, path)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            names = [field.name for field in dataclasses.fields(value)]
            self._encode_record(value, names, out, path)
        else:
            raise self._error(path, f"cannot encode object of type {type(value).__qualname__}")

    def _encode_record(self, value: object, names: list[str], out: bytearray, path: str) -> None:
        self._write_text(b"a", _qualified_name(type(value)), out)
        out += _length(len(names))
        for name in names:
            self._write_text(b"s", name, out)
            self.encode(getattr(value, name), out, f"{path}.{name}")

    def _write_text(self, tag: bytes, text: str, out: bytearray) -> None:
        # surrogatepass: a lone surrogate is still a distinct, encodable str.
        data = str.encode(text, "utf-8", "surrogatepass")
        out += tag + _length(len(data)) + data

    def _write_sorted(self, tag: bytes, items: list[bytes], out: bytearray) -> None:
        items.sort()
        out += tag + _length(len(items))
        for item in items:
            out += _length(len(item)) + item

    def _error(self, path: str, reason: str) -> UnencodableInputError:
        return UnencodableInputError(
            f"{self._where}, argument {path!r}: {reason}; pass plain data (str, int,"
            " float, bytes, None, lists, tuples, dicts, attrs or dataclass instances) or turn"
            " off caching for this step",
            step=self._step,
            path=path,
        )


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# Types a run can never hand to a step as plain data.
_NEVER_ENCODABLE_ABCS: tuple[Any, ...] = (
    collections.abc.Callable,
    collections.abc.Awaitable,
    collections.abc.Iterator,
    collections.abc.AsyncIterator,
    collections.abc.AsyncIterable,
)
_ENCODABLE_BASES: tuple[type, ...] = (
    type(None),
    bool,
    int,
    float,
    str,
    bytes,
    bytearray,
    enum.Enum,
    list,
    tuple,
    set,
    frozenset,
    collections.abc.Mapping,
)


def is_never_encodable(annotation: object) -> bool:
    """Tell whether no value of a parameter's annotated type can ever be encoded into a key.

    The answer is conservative: `True` only when the annotation clearly rules out every
    encodable value (a plain class that is neither data nor attrs/dataclass, a callable, an
    iterator, a union of such). Anything unknown (`Any`, a string annotation, a type
    variable, a protocol, `object`, a generic container) gives `False`, and `make_key`
    decides at run time.

    Args:
        annotation: A parameter's annotation, as `inspect.signature` or
            `typing.get_type_hints` give it.

    Returns:
        `True` if caching a step with this parameter can never work.
    """
    if annotation is typing.Any:
        return False
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return is_never_encodable(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return all(is_never_encodable(arg) for arg in typing.get_args(annotation))
    if origin is collections.abc.Callable:
        return True
    if origin is not None:
        # list[socket] is still encodable when empty; stay conservative.
        return isinstance(origin, type) and _class_is_never_encodable(origin)
    return isinstance(annotation, type) and _class_is_never_encodable(annotation)


def _class_is_never_encodable(cls: type) -> bool:
    if issubclass(cls, _ENCODABLE_BASES):
        return False
    if attrs.has(cls) or dataclasses.is_dataclass(cls):
        return False
    if any(issubclass(cls, abc) for abc in _NEVER_ENCODABLE_ABCS):
        return True
    # A concrete class that is not data: its instances cannot be encoded. `object`, a
    # protocol or an ABC may stand for encodable values.
    open_ended = cls is object or getattr(cls, "_is_protocol", False) or inspect.isabstract(cls)
    return not open_ended
