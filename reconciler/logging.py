"""structlog setup: JSON lines by default, a readable console format on a terminal.

Log the names of Secrets, never their data: no processor here can tell a password from a name.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def configure(*, debug: bool = False, stream: TextIO | None = None) -> None:
    """Route structlog (and the standard library's logging) to `stream` (stderr by default)."""
    stream = stream or sys.stderr
    level = logging.DEBUG if debug else logging.INFO
    # The console renderer formats exceptions itself; JSON needs them rendered into a field.
    renderers: list[structlog.types.Processor] = (
        [structlog.dev.ConsoleRenderer()]
        if stream.isatty()
        else [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,  # reconcileID, controller, object
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            *renderers,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    # Libraries (aiohttp, asyncio) log through the standard library; keep their warnings.
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, stream=stream)
