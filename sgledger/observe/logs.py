"""Logging for services: one JSON object per line (python-json-logger), for log collectors.

Log records carry counts, reasons, event ids and positions; never a child's or person's id or
any text an agency entered (the quarantine detail is the projector's own sentence, bounded).
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter


def configure(*, json_lines: bool, debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO if json_lines else logging.WARNING)
    if not debug:
        # kafka-python logs every dropped connection as an error; our own errors say what matters.
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
