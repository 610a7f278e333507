"""Explicit name -> object registries filled by a ``register(name)`` decorator."""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from cs_features.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """A dict of named components (encoders, heads, autoencoder variants, proposal sources).

    Args:
        kind: what the registry holds, used in error messages ("encoder", "head", ...).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name``; a duplicate name raises RegistryError."""

        def decorator(obj: T) -> T:
            if name in self._items:
                raise RegistryError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        """Return the component called ``name``; an unknown name raises and lists the known ones."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise RegistryError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
