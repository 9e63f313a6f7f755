"""Comparing identities: one person, however their name is spelled or cased.

Four-eyes and every "is this the same person" check compare `identity_key`s, never
raw strings: `Carol`, `carol ` and a full-width `CAROL` are one person.
"""

import unicodedata


def identity_key(name: str) -> str:
    """The comparable form of a principal's name (NFKC, case-folded, trimmed)."""
    return unicodedata.normalize("NFKC", name).casefold().strip()


def same_identity(a: str, b: str) -> bool:
    """True when `a` and `b` name the same principal; an empty name matches nobody."""
    key = identity_key(a)
    return bool(key) and key == identity_key(b)
