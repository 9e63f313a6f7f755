"""How long a store operation may take: briefly for a caller who waits, longer in the background.

The store client's own timeout (APPROVAL_STORE_TIMEOUT_MS) is short, so a request
answers 503 within about two seconds when the store is away instead of hanging.
Consumers and background jobs (ingesting a batch, sweeping, relaying) wait longer
inside `background()`: nobody is waiting on them, and they retry on their own.
"""

from contextlib import AbstractContextManager

import pymongo

BACKGROUND_SECONDS = 30.0


def background() -> AbstractContextManager[None]:
    return pymongo.timeout(BACKGROUND_SECONDS)
