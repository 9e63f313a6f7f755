"""The files demo's sandbox: a directory the agent may read and delete in, nothing else.

Patterns are globs relative to the sandbox root; anything that would reach outside
it (absolute paths, `..`, symlinks pointing elsewhere) is refused or skipped.
"""

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

SECONDS_PER_DAY = 86_400


class SandboxError(ValueError):
    """A pattern or path that would leave the sandbox."""


@dataclass(frozen=True)
class FileInfo:
    path: str
    size: int
    modified: float

    def age_days(self, now: float) -> float:
        return (now - self.modified) / SECONDS_PER_DAY


class Sandbox:
    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()

    def ensure(self) -> bool:
        """Create the root if missing; False (and the files agent reports errors) if it cannot."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError:
            return False
        return True

    async def match(self, pattern: str, *, older_than_days: float | None = None) -> list[FileInfo]:
        return await asyncio.to_thread(self._match, pattern, older_than_days, time.time())

    async def delete(self, paths: list[str]) -> tuple[list[str], list[str]]:
        """Delete exactly these files; returns (deleted, already gone)."""
        return await asyncio.to_thread(self._delete, paths)

    def _match(self, pattern: str, older_than_days: float | None, now: float) -> list[FileInfo]:
        _check_relative(pattern)
        found = []
        for path in sorted(self.root.glob(pattern)):
            inside = self._inside(path)
            if inside is None or not path.is_file():
                continue
            stat = path.stat()
            info = FileInfo(inside, stat.st_size, stat.st_mtime)
            if older_than_days is None or info.age_days(now) > older_than_days:
                found.append(info)
        return found

    def _delete(self, paths: list[str]) -> tuple[list[str], list[str]]:
        for name in paths:
            _check_relative(name)
            if self._inside(self.root / name) is None:
                raise SandboxError(f"{name!r} is outside the sandbox")
        deleted, gone = [], []
        for name in paths:
            path = self.root / name
            try:
                path.unlink()
            except FileNotFoundError:
                gone.append(name)
            else:
                deleted.append(name)
        return deleted, gone

    def _inside(self, path: Path) -> str | None:
        """The path relative to the root, or None when it resolves outside it."""
        try:
            relative = path.resolve().relative_to(self.root)
        except (ValueError, OSError):
            return None
        return relative.as_posix()


def _check_relative(pattern: str) -> None:
    pure = PurePosixPath(pattern)
    if not pattern or pure.is_absolute() or ".." in pure.parts or "\\" in pattern:
        raise SandboxError(
            f"{pattern!r} must be a relative path or glob inside the sandbox (no '..', no '/' start)"
        )
