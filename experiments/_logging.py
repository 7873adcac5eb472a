"""Keeps the console readable: INFO records from orbax (several per checkpoint) are dropped."""

import logging


class _DropLibraryInfo(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        noisy = "orbax" in record.pathname or "/jax/_src/" in record.pathname
        return record.levelno >= logging.WARNING or not noisy


def quiet_libraries() -> None:
    """Drops INFO records of orbax and jax internals from every root handler."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(_DropLibraryInfo())
