"""The registry's state and rules, with no IO.

Every change is a log record (key, value) in the style of Confluent's own
``_schemas`` topic; ``apply`` is the only way state changes, both when a record
is replayed at start-up and when it has just been written. Operations validate,
decide which records to write, and raise ``ApiError`` with Confluent's codes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from core.errors import InvalidSchemaError
from schemas.compatibility import CompatibilityMode, incompatibilities, parse

LogRecord = tuple[dict[str, Any], dict[str, Any] | None]

SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403
SUBJECT_SOFT_DELETED = 40404
SUBJECT_NOT_SOFT_DELETED = 40405
VERSION_SOFT_DELETED = 40406
VERSION_NOT_SOFT_DELETED = 40407
SUBJECT_LEVEL_NOT_CONFIGURED = 40408
INVALID_SCHEMA = 42201
INVALID_VERSION = 42202
INVALID_COMPATIBILITY_LEVEL = 42203
INCOMPATIBLE_SCHEMA = 409


# Outside core.errors: the embedded registry's HTTP answer in Confluent's codes, not a failure.
class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class SchemaVersion:
    subject: str
    version: int
    id: int
    schema: str
    deleted: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "version": self.version,
            "id": self.id,
            "schema": self.schema,
        }


@dataclass
class RegistryState:
    default_mode: CompatibilityMode = CompatibilityMode.BACKWARD
    schemas: dict[int, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)  # canonical text -> id
    subjects: dict[str, dict[int, SchemaVersion]] = field(default_factory=dict)
    modes: dict[str | None, CompatibilityMode] = field(default_factory=dict)

    # -- replay -------------------------------------------------------------

    def apply(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        if key.get("keytype") == "SCHEMA":
            self._apply_schema(str(key["subject"]), int(key["version"]), value)
        elif key.get("keytype") == "CONFIG":
            subject = key.get("subject")
            if value is None:
                self.modes.pop(subject, None)
            else:
                self.modes[subject] = CompatibilityMode(value["compatibilityLevel"])

    def _apply_schema(self, subject: str, version: int, value: dict[str, Any] | None) -> None:
        versions = self.subjects.setdefault(subject, {})
        if value is None:  # permanent delete (tombstone)
            versions.pop(version, None)
            if not versions:
                del self.subjects[subject]
            return
        schema_id, text = int(value["id"]), str(value["schema"])
        self.schemas[schema_id] = text
        self.ids.setdefault(canonical(text), schema_id)
        versions[version] = SchemaVersion(
            subject, version, schema_id, text, bool(value.get("deleted", False))
        )

    # -- queries ------------------------------------------------------------

    def live_versions(self, subject: str, include_deleted: bool = False) -> list[SchemaVersion]:
        versions = self.subjects.get(subject)
        if not versions or (not include_deleted and all(v.deleted for v in versions.values())):
            raise ApiError(404, SUBJECT_NOT_FOUND, f"Subject '{subject}' not found.")
        chosen = [v for v in versions.values() if include_deleted or not v.deleted]
        return sorted(chosen, key=lambda v: v.version)

    def version(self, subject: str, version: str, include_deleted: bool = False) -> SchemaVersion:
        versions = self.live_versions(subject, include_deleted)
        if version in {"latest", "-1"}:
            return versions[-1]
        number = parse_version(version)
        for candidate in versions:
            if candidate.version == number:
                return candidate
        raise ApiError(404, VERSION_NOT_FOUND, f"Version {version} not found.")

    def schema(self, schema_id: int) -> str:
        if schema_id not in self.schemas:
            raise ApiError(404, SCHEMA_NOT_FOUND, f"Schema {schema_id} not found")
        return self.schemas[schema_id]

    def mode(self, subject: str | None) -> CompatibilityMode:
        return self.modes.get(subject) or self.modes.get(None) or self.default_mode

    def find(self, subject: str, schema_text: str, include_deleted: bool = False) -> SchemaVersion:
        wanted = canonical(validated(schema_text))
        found = self._match(self.live_versions(subject, include_deleted), wanted)
        if found is None:
            raise ApiError(404, SCHEMA_NOT_FOUND, "Schema not found")
        return found

    @staticmethod
    def _match(versions: list[SchemaVersion], wanted: str) -> SchemaVersion | None:
        return next((v for v in versions if canonical(v.schema) == wanted), None)

    def check(self, subject: str, schema_text: str, version: str | None) -> list[str]:
        """Why ``schema_text`` is incompatible with the subject (per its mode), if it is."""
        schema_text = validated(schema_text)
        mode = self.mode(subject)
        if version is None:
            return incompatibilities(schema_text, self._live_texts(subject), mode)
        target = self.version(subject, version)
        return incompatibilities(schema_text, [target.schema], _non_transitive(mode))

    def _live_texts(self, subject: str) -> list[str]:
        """The subject's schemas that are not deleted, oldest first (none if no subject)."""
        versions = sorted(self.subjects.get(subject, {}).values(), key=lambda v: v.version)
        return [v.schema for v in versions if not v.deleted]

    # -- commands: return the log records to write ----------------------------

    def register(self, subject: str, schema_text: str) -> tuple[int, list[LogRecord]]:
        schema_text = validated(schema_text)
        live = [v for v in self.subjects.get(subject, {}).values() if not v.deleted]
        existing = self._match(live, canonical(schema_text))
        if existing is not None:
            return existing.id, []
        problems = incompatibilities(schema_text, self._live_texts(subject), self.mode(subject))
        if problems:
            raise ApiError(
                409,
                INCOMPATIBLE_SCHEMA,
                "Schema being registered is incompatible with an earlier schema for "
                f'subject "{subject}", details: {problems}',
            )
        schema_id = self.ids.get(canonical(schema_text), max(self.schemas, default=0) + 1)
        version = max(self.subjects.get(subject, {}), default=0) + 1
        value = {
            "subject": subject,
            "version": version,
            "id": schema_id,
            "schema": schema_text,
            "deleted": False,
        }
        return schema_id, [(schema_key(subject, version), value)]

    def delete_subject(self, subject: str, permanent: bool) -> tuple[list[int], list[LogRecord]]:
        versions = self.live_versions(subject, include_deleted=True)
        if permanent:
            if any(not v.deleted for v in versions):
                raise ApiError(
                    404,
                    SUBJECT_NOT_SOFT_DELETED,
                    f"Subject '{subject}' was not deleted first before being permanently deleted",
                )
            return [v.version for v in versions], [
                (schema_key(subject, v.version), None) for v in versions
            ]
        if all(v.deleted for v in versions):
            raise ApiError(
                404,
                SUBJECT_SOFT_DELETED,
                f"Subject '{subject}' was soft deleted.Set permanent=true to delete permanently",
            )
        return [v.version for v in versions if not v.deleted], [
            _soft_deleted(v) for v in versions if not v.deleted
        ]

    def delete_version(
        self, subject: str, version: str, permanent: bool
    ) -> tuple[int, list[LogRecord]]:
        target = self.version(subject, version, include_deleted=True)
        if permanent:
            if not target.deleted:
                raise ApiError(
                    404,
                    VERSION_NOT_SOFT_DELETED,
                    f"Subject '{subject}' Version {target.version} was not deleted "
                    "first before being permanently deleted",
                )
            return target.version, [(schema_key(subject, target.version), None)]
        if target.deleted:
            raise ApiError(
                404,
                VERSION_SOFT_DELETED,
                f"Subject '{subject}' Version {target.version} was soft deleted.Set "
                "permanent=true to delete permanently",
            )
        return target.version, [_soft_deleted(target)]


def schema_key(subject: str, version: int) -> dict[str, Any]:
    return {"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}


def config_key(subject: str | None) -> dict[str, Any]:
    return {"keytype": "CONFIG", "subject": subject, "magic": 0}


def parse_mode(level: Any) -> CompatibilityMode:
    try:
        return CompatibilityMode(str(level).upper())
    except ValueError:
        raise ApiError(
            422,
            INVALID_COMPATIBILITY_LEVEL,
            f"Invalid compatibility level: {level!r}; one of {', '.join(CompatibilityMode)}",
        ) from None


def parse_version(version: str) -> int:
    try:
        number = int(version)
    except ValueError:
        number = 0
    if number <= 0:
        raise ApiError(
            422,
            INVALID_VERSION,
            f"The specified version '{version}' is not a valid version id. Allowed "
            'values are between [1, 2^31-1] and the string "latest"',
        )
    return number


def validated(schema_text: str) -> str:
    try:
        parse(schema_text)
    except InvalidSchemaError as error:
        raise ApiError(422, INVALID_SCHEMA, f"Invalid schema: {error}") from None
    return schema_text


def canonical(schema_text: str) -> str:
    """Whitespace- and key-order-insensitive form used to match schemas."""
    return json.dumps(json.loads(schema_text), sort_keys=True, separators=(",", ":"))


def _soft_deleted(version: SchemaVersion) -> LogRecord:
    return schema_key(version.subject, version.version), {**version.as_json(), "deleted": True}


def _non_transitive(mode: CompatibilityMode) -> CompatibilityMode:
    return CompatibilityMode(mode.removesuffix("_TRANSITIVE"))
