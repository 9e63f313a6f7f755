"""When things happen: reminder time and retry back-off (pure, clock passed in)."""

import random
from datetime import datetime

_rng = random.Random()


def remind_at(requested_at: datetime, expires_at: datetime, fraction: float) -> datetime | None:
    """The moment `fraction` of the approval's time has passed; None when reminders are off."""
    if not 0 < fraction < 1 or expires_at <= requested_at:
        return None
    return requested_at + (expires_at - requested_at) * fraction


def backoff(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Delay after failed `attempt` (1-based): exponential, capped, with "equal jitter".

    Half the delay is fixed so retries never bunch up at zero; the other half is
    random so many deliveries failing together do not retry in lockstep.
    """
    ceiling = min(cap, base * 2.0 ** (attempt - 1))
    jitter = (rng or _rng).uniform(0, ceiling / 2)
    return ceiling / 2 + jitter
