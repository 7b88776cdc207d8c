"""Text tables for the fleet commands: plain columns, and a live table redrawn in place on a terminal."""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from typing import TextIO


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Left-aligned columns two spaces apart; None shows as '-'."""
    cells = [[str(h) for h in header]] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]


class LiveTable:
    """Redraws a block of lines in place (ANSI cursor moves), at most `fps` times a second, clipped to
    the terminal's height so that a thousand rows do not scroll the screen."""

    def __init__(self, stream: TextIO, fps: float = 5.0) -> None:
        self.stream = stream
        self.interval = 1.0 / fps
        self.drawn = 0
        self.last = 0.0

    def draw(self, lines: list[str], force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        height = shutil.get_terminal_size((100, 24)).lines - 2
        if len(lines) > height:
            lines = lines[: height - 1] + [f"... and {len(lines) - height + 1} more rows"]
        out = (
            (f"\x1b[{self.drawn}F" if self.drawn else "") + "\x1b[J" + "".join(line + "\n" for line in lines)
        )
        self.stream.write(out)
        self.stream.flush()
        self.drawn = len(lines)

    def clear(self) -> None:
        if self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
            self.stream.flush()
            self.drawn = 0
