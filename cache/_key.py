"""Cache keys: a stable digest of a step, its version, a namespace and canonical inputs.

The encoding is tagged and length-prefixed, so two different inputs never encode to the
same bytes: `1`, `1.0`, `True` and `"1"` differ, as do a list and a tuple with the same
items. Mappings and sets are sorted by the encoding of their items, so key order never
matters. The digest is blake2b, which does not depend on Python's salted `hash()`, so a
key is the same in every process.
"""

from __future__ import annotations

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

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["CacheKey", "is_never_encodable", "make_key"]

# Bump when the encoding changes, so old digests can never match new ones.
_KEY_FORMAT = b"specroute.cache.key/1"
_DIGEST_SIZE = 16


@attrs.frozen
class CacheKey:
    """The identity of one cached step result.

    Two keys are equal only when step, version, namespace and inputs all match. Build one
    with `make_key`, not directly.

    Args:
        step: The step's name.
        version: The step's version string (bumped when its prompt changes).
        namespace: The tenant; entries in different namespaces never see each other.
        digest: Hex blake2b digest of all of the above and the canonical inputs.
    """

    step: str
    version: str
    namespace: str
    digest: str

    def __str__(self) -> str:
        return f"{self.step}@{self.version}[{self.namespace}]:{self.digest[:12]}"


def make_key(step: str, version: str, namespace: str, inputs: Mapping[str, Any]) -> CacheKey:
    """Make the cache key of a step called with `inputs`.

    Args:
        step: The step's name.
        version: The step's version string.
        namespace: The tenant, a hard partition of the cache.
        inputs: The step's arguments by name. Values may be `None`, `bool`, `int`, `float`,
            `str`, `bytes`, enum members, lists, tuples, sets, mappings, attrs instances
            and dataclass instances, nested in any way.

    Returns:
        The key, equal for equal inputs whatever the order of mapping keys.

    Raises:
        UnencodableInputError: An input (or something inside it) has no canonical encoding;
            the message names the step and the argument path.
    """
    encoder = _Encoder(step)
    out = bytearray(_KEY_FORMAT)
    for text in (step, version, namespace):
        encoder.encode(text, out, "")
    encoder.encode_arguments(inputs, out)
    digest = hashlib.blake2b(out, digest_size=_DIGEST_SIZE).hexdigest()
    return CacheKey(step, version, namespace, digest)


def _length(n: int) -> bytes:
    return n.to_bytes(8, "big")


class _Encoder:
    """Writes the canonical encoding of values; remembers the containers it is inside."""

    def __init__(self, step: str) -> None:
        self._step = step
        self._open: set[int] = set()

    def encode_arguments(self, inputs: Mapping[str, Any], out: bytearray) -> None:
        items = []
        for name, value in inputs.items():
            if not isinstance(name, str):
                raise self._error(repr(name), "argument names must be str")
            item = bytearray()
            self.encode(name, item, name)
            self.encode(value, item, name)
            items.append(bytes(item))
        self._write_sorted(b"A", items, out)

    def encode(self, value: object, out: bytearray, path: str) -> None:
        # Order matters: bool and enum members are also ints or strs.
        if value is None:
            out += b"N"
        elif value is True:
            out += b"T"
        elif value is False:
            out += b"F"
        elif isinstance(value, enum.Enum):
            self._write_text(b"e", _qualified_name(type(value)) + "." + value.name, out)
        elif isinstance(value, int):
            self._write_text(b"i", str(int(value)), out)
        elif isinstance(value, float):
            # repr round-trips every float exactly, and names nan and inf.
            self._write_text(b"f", repr(float(value)), out)
        elif isinstance(value, str):
            self._write_text(b"s", value, out)
        elif isinstance(value, bytes | bytearray):
            out += b"b" + _length(len(value)) + bytes(value)
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
            self._write_sorted(b"S", elements, out)
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
        data = text.encode("utf-8", "surrogatepass")
        out += tag + _length(len(data)) + data

    def _write_sorted(self, tag: bytes, items: list[bytes], out: bytearray) -> None:
        items.sort()
        out += tag + _length(len(items))
        for item in items:
            out += _length(len(item)) + item

    def _error(self, path: str, reason: str) -> UnencodableInputError:
        return UnencodableInputError(
            f"step {self._step!r}, argument {path!r}: {reason}; pass plain data (str, int,"
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
