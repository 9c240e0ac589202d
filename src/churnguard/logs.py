"""Log lines a scheduler can read: each stage's start and end, with seconds and rows, every line
tagged with the run id and the command, as text or as one JSON object per line.

Library code marks its stages with :class:`Stages` and logs warnings through :mod:`logging`;
the command line chooses the level and the format (:func:`configure`). The run id is a fresh
random id per command, except where a run has an identity of its own: ``score`` uses the id
its ``manifest.json`` and ``assignments.csv`` carry (:func:`set_run`), so a re-run of the same
night logs the same id.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Literal

from churnguard.io import printable

log = logging.getLogger("churnguard")

LogFormat = Literal["text", "json"]
#: The fields of a JSON log line, in order.
FIELDS = ("time", "level", "run_id", "command", "stage", "seconds", "rows", "message")

_RUN: ContextVar[tuple[str, str]] = ContextVar("churnguard_run", default=("", ""))


def new_run_id() -> str:
    """A fresh random run id (16 hex digits)."""
    return uuid.uuid4().hex[:16]


def set_run(run_id: str, command: str | None = None) -> None:
    """Tag the log lines that follow with ``run_id`` (and ``command``, when given)."""
    _, current = _RUN.get()
    _RUN.set((run_id, current if command is None else command))


def run_id() -> str:
    """The run id the log lines carry now ('' outside a command)."""
    return _RUN.get()[0]


class _Tagged(logging.Filter):
    """Give every record the run id and command, and empty stage fields when it has none."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id, record.command = _RUN.get()
        for name in ("stage", "seconds", "rows"):
            if not hasattr(record, name):
                setattr(record, name, None)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line with :data:`FIELDS`; a traceback joins the message."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        line = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "run_id": record.run_id,  # type: ignore[attr-defined]
            "command": record.command,  # type: ignore[attr-defined]
            "stage": record.stage,  # type: ignore[attr-defined]
            "seconds": record.seconds,  # type: ignore[attr-defined]
            "rows": record.rows,  # type: ignore[attr-defined]
            "message": message,
        }
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """``time level run_id command: message``, control characters escaped (a name from the
    data stays text on the terminal)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(run_id)s %(command)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def configure(level: int, fmt: LogFormat, stream: Any) -> None:
    """Send churnguard's log (and warnings of the libraries it uses) to ``stream``."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(_Tagged())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    logging.captureWarnings(True)  # a library's warning is a log line too
    log.setLevel(level)


class Stages:
    """Consecutive stages of one piece of work: calling it with a name ends the stage before
    (logged with its seconds and rows) and starts the next; :meth:`done` ends the last.

    ``progress``, if given, also hears each stage's name (the command line's status line).
    """

    def __init__(self, progress: Callable[[str], None] | None = None) -> None:
        self._progress = progress
        self._name: str | None = None
        self._started = 0.0
        #: Rows the current stage produced; logged when it ends.
        self.rows: int | None = None

    def __call__(self, name: str, detail: str = "") -> None:
        """Start stage ``name`` (a fixed name a scheduler can match; ``detail`` varies)."""
        self.done()
        self._name, self._started, self.rows = name, time.perf_counter(), None
        message = f"{name} {detail}" if detail else name
        log.info("%s", message, extra={"stage": name})
        if self._progress is not None:
            self._progress(message)

    def tell(self, message: str) -> None:
        """News within the current stage (a tuning trial): logged, and shown as progress."""
        log.info("%s", message, extra={"stage": self._name})
        if self._progress is not None:
            self._progress(message)

    def done(self) -> None:
        """End the current stage, if one is running."""
        if self._name is None:
            return
        seconds = round(time.perf_counter() - self._started, 3)
        rows = "" if self.rows is None else f", {self.rows:,} rows"
        log.info(
            "%s: done in %.1f s%s",
            self._name,
            seconds,
            rows,
            extra={"stage": self._name, "seconds": seconds, "rows": self.rows},
        )
        self._name = None
