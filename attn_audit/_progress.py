"""Progress lines: durations printed for people."""


def format_duration(seconds: float) -> str:
    """``75.2`` → ``"1m15s"``; ``9.6`` → ``"10s"``."""
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
