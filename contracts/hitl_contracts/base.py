"""Fields every event carries, and the schema-version gate consumers rely on."""

from datetime import UTC, datetime
from typing import ClassVar, Self
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UnsupportedSchemaVersion(ValueError):
    """An event written by a newer producer than this consumer understands."""


class Event(BaseModel):
    """Common envelope: unique id, schema version, aware UTC timestamp."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # The newest schema version this code reads and writes; bumped by addition only.
    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: UUID = Field(
        default_factory=uuid4,
        description="Unique per event; consumers de-duplicate on it.",
    )
    schema_version: int = Field(default=1, ge=1, description="Contract version the producer wrote.")
    occurred_at: AwareDatetime = Field(
        default_factory=utcnow, description="When the event happened (aware, UTC)."
    )

    @model_validator(mode="after")
    def _known_version(self) -> Self:
        if self.schema_version > self.SCHEMA_VERSION:
            raise UnsupportedSchemaVersion(
                f"{type(self).__name__} schema_version {self.schema_version} is newer than "
                f"the {self.SCHEMA_VERSION} this consumer understands"
            )
        return self
