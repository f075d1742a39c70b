"""Registering the extension's operator modules around a test module (bpy keeps classes registered globally)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def registered(*modules) -> Iterator[None]:
    """register() each module in order, unregister() them in reverse when done."""
    for module in modules:
        module.register()
    try:
        yield
    finally:
        for module in reversed(modules):
            module.unregister()
