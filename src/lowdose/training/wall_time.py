"""``HH:MM:SS`` wall times: the form of a training budget and of its ``max_time`` guard."""

from __future__ import annotations

import re

_WALL_TIME = re.compile(r"^(\d+:)?\d{1,2}:\d{2}:\d{2}$")


def is_wall_time(text: str) -> bool:
    """True for ``HH:MM:SS`` or ``DD:HH:MM:SS`` (Lightning's ``max_time`` forms)."""
    return bool(_WALL_TIME.match(text))


def wall_time_s(text: str) -> int:
    """``"HH:MM:SS"`` or ``"DD:HH:MM:SS"`` -> seconds.

    >>> wall_time_s("00:30:00"), wall_time_s("1:00:00:10")
    (1800, 86410)
    """
    parts = [int(part) for part in text.split(":")]
    days, hours, minutes, seconds = [0] * (4 - len(parts)) + parts
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def format_wall_time(seconds: float) -> str:
    """Seconds (rounded down) -> ``"HH:MM:SS"``, or ``"D:HH:MM:SS"`` from 24 hours on.

    >>> format_wall_time(2700.9), format_wall_time(90_000)
    ('00:45:00', '1:01:00:00')
    """
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}:{clock}" if days else clock
