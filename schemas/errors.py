"""Errors of the contracts layer.

    PipelineError
    ├── SerializationError          bytes that cannot become a current-shape record (poison)
    │   ├── NotConfluentFramedError     no magic byte 0 / too short for the 5-byte header
    │   ├── UnknownSchemaIdError        the registry has no schema with that id
    │   ├── UnknownRecordTypeError      the writer's record is not one this build knows
    │   ├── AvroDecodeError             the Avro body does not match the writer schema
    │   ├── AvroEncodeError             a value does not fit its schema
    │   └── UpcastError                 an upcaster failed or produced an invalid record
    ├── RegistryError(status, code)  the registry refused or failed a request
    └── SchemaCatalogError           the local schema files are invalid

Every ``SerializationError`` has a stable ``code`` that the pipeline puts in the
dead-letter topic's headers.
"""

from __future__ import annotations

from core.errors import PipelineError


class SerializationError(PipelineError):
    code = "SERIALIZATION_ERROR"


class NotConfluentFramedError(SerializationError):
    code = "NOT_CONFLUENT_FRAMED"


class UnknownSchemaIdError(SerializationError):
    code = "UNKNOWN_SCHEMA_ID"

    def __init__(self, schema_id: int) -> None:
        super().__init__(
            f"schema id {schema_id} is not in the registry; the record was written against "
            "another registry, or the schema was permanently deleted"
        )
        self.schema_id = schema_id


class UnknownRecordTypeError(SerializationError):
    code = "UNKNOWN_RECORD_TYPE"


class AvroDecodeError(SerializationError):
    code = "AVRO_DECODE_FAILED"


class AvroEncodeError(SerializationError):
    code = "AVRO_ENCODE_FAILED"


class UpcastError(SerializationError):
    code = "UPCAST_FAILED"


class RegistryError(PipelineError):
    """A Confluent-API registry answered with an error (or could not be reached)."""

    def __init__(self, message: str, *, status: int, code: int) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class SchemaCatalogError(PipelineError):
    """A schema file under schemas/avro is invalid or references an unknown type."""
