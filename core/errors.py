"""The pipeline's error tree: every error the product raises on purpose, in one place.

Library errors (confluent_kafka, psycopg, OpenSearch/Elasticsearch, httpx, sqlite3,
fastavro) are turned into these where they cross into product code. Every message
names what failed and what to do about it.

    PipelineError                   root; the CLI prints any of these as one line
    ├── ConfigurationError          a setting is missing or contradicts another
    ├── StackError                  a service of the local stack cannot start or is unhealthy
    │   └── PrerequisiteError       a tool (java, mvn) or a free port is missing
    ├── DomainError                 a command breaks a rule (never retried; a rejection, ``code``)
    │   ├── InvalidCommandError     the command's own data is wrong (no lines, quantity <= 0)
    │   ├── IllegalTransitionError  the aggregate's state does not allow the command
    │   ├── AggregateNotFoundError  the aggregate does not exist (yet)
    │   ├── AlreadyExistsError      creating an aggregate that exists
    │   └── VersionConflictError    optimistic concurrency: expected version != current
    ├── InputRejectedError          a commands-topic record that cannot be decided (DLQ)
    ├── SerializationError          bytes that cannot become a current-shape record (DLQ)
    │   ├── NotConfluentFramedError no magic byte 0 / too short for the 5-byte header
    │   ├── UnknownSchemaIdError    the registry has no schema with that id
    │   ├── UnknownRecordTypeError  the writer's record is not one this build knows
    │   ├── AvroDecodeError         the Avro body does not match the writer schema
    │   ├── AvroEncodeError         a value does not fit its schema
    │   ├── UpcastError             an upcaster failed or produced an invalid record
    │   └── JsonValueError          a JSON value does not fit the record's schema (``path``)
    ├── InvalidSchemaError          a text is not a valid Avro schema
    ├── RegistryError               the schema registry refused or failed a request (``status``)
    ├── SchemaCatalogError          the local schema files are invalid
    ├── LocalStoreError             a write to a worker's local state store failed (disk)
    ├── CallOverranError            a librdkafka call did not return within its timeout and grace
    ├── SinkError                   a read store refused a write (``retryable``)
    │   ├── ResourceExistsError     the search index to create exists already
    │   └── ResourceMissingError    the index, alias or document addressed does not exist
    ├── InvalidEventError           an event a projection can never apply (poison, ``code``)
    │   └── DocumentRefusedError    the search engine will never accept the event's document
    ├── ProjectionTimeoutError      a projection did not reach the awaited version in time
    ├── CommandTimeoutError         no command result arrived in time
    ├── UnknownCommandError         a command name the domain does not declare
    ├── LagError                    Kafka did not answer a consumer-lag query
    ├── DeadLetterError             a dead letter cannot be found, read or replayed
    │   ├── BadSelectionError       a selection of dead letters that means nothing
    │   └── DeadLetterNotFoundError no such dead-letter topic, partition or offset
    ├── StoreUnavailableError       the query service's PostgreSQL did not answer (retry)
    ├── ProjectionNotReadyError     a projection has no tables yet (not migrated)
    ├── UnknownProjectionError      no search projection of the domain has the name
    ├── TokenError                  a consistency token this service did not issue
    ├── QueryParameterError         a list parameter a table projection cannot answer
    └── SearchParameterError        a search parameter a search projection cannot answer

``tests/unit/test_error_tree.py`` checks that this tree names exactly the classes
below and that the product defines no error class elsewhere. Deliberately outside
the tree (each says why where it is defined): ``cqrs.query.problems.Problem`` (the
HTTP answer the query service renders), ``schemas.registry.state.ApiError`` (the
embedded registry's HTTP answer, in Confluent's codes), ``processors.transactional_loop.
GaveUpError`` (a ``KafkaException`` the loop's librdkafka recovery handles) and
``sinks.runner._AbandonedError`` (private control flow).
"""

from __future__ import annotations

from collections.abc import Sequence


class PipelineError(Exception):
    """Root of every error the pipeline raises on purpose."""


class ConfigurationError(PipelineError):
    """A setting is missing, malformed or contradicts another."""


class StackError(PipelineError):
    """A service of the local stack failed to start or to become ready."""


class PrerequisiteError(StackError):
    """Something the local stack needs is missing on this machine."""


# -- the domain (public API: ``from cqrs import DomainError, ...``) --------------------
# Codes are stable: clients may branch on them.


class DomainError(PipelineError):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class InvalidCommandError(DomainError):
    pass


class IllegalTransitionError(DomainError):
    pass


class AggregateNotFoundError(DomainError):
    pass


class AlreadyExistsError(DomainError):
    pass


class VersionConflictError(DomainError):
    def __init__(self, expected: int, current: int) -> None:
        super().__init__(
            "VERSION_CONFLICT",
            f"expected version {expected}, but the aggregate is at version {current}",
        )
        self.expected = expected
        self.current = current


class InputRejectedError(PipelineError):
    """A record on the commands topic that cannot be decided, or whose decision its
    contracts cannot carry; goes to the dead-letter topic."""

    def __init__(
        self,
        code: str,
        reason: str,
        command_id: str | None = None,
        aggregate_id: str | None = None,
        command_type: str = "",
    ) -> None:
        super().__init__(f"{code}: {reason}")
        self.code, self.reason = code, reason
        self.command_id, self.aggregate_id, self.command_type = (
            command_id,
            aggregate_id,
            command_type,
        )


# -- contracts: every SerializationError has a stable ``code`` for the DLQ headers ----


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


class JsonValueError(SerializationError):
    code = "INVALID_JSON_VALUE"

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path or 'the value'}: {reason}")
        self.path = path
        self.reason = reason


class InvalidSchemaError(PipelineError):
    """The text is not a valid Avro schema."""


class RegistryError(PipelineError):
    """A Confluent-API registry answered with an error (or could not be reached)."""

    def __init__(self, message: str, *, status: int, code: int) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class SchemaCatalogError(PipelineError):
    """A schema file under schemas/avro is invalid or references an unknown type."""


# -- the write side ---------------------------------------------------------------------


class LocalStoreError(PipelineError):
    """A write to the local state store failed (a full or failing disk)."""


class CallOverranError(PipelineError):
    """The call did not return within its timeout and the grace period."""


# -- the read side ----------------------------------------------------------------------


class SinkError(PipelineError):
    """A read store refused a write; ``retryable`` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class ResourceExistsError(SinkError):
    """The index to create exists already."""


class ResourceMissingError(SinkError):
    """The index, alias or document addressed does not exist (retryable: it may come back)."""


class InvalidEventError(PipelineError):
    """A decoded event that breaks a projection's expectations (e.g. totals that do not add up)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.reason = message


class DocumentRefusedError(InvalidEventError):
    """The search engine will never accept the document an event leads to."""

    def __init__(self, document_id: str, refusal: str) -> None:
        super().__init__("SEARCH_DOCUMENT_REFUSED", f"document {document_id}: {refusal}")


class ProjectionTimeoutError(PipelineError):
    """A projection did not reach the awaited version in time."""


# -- the public API, CLI and query service ----------------------------------------------


class CommandTimeoutError(PipelineError):
    """No result arrived in time: is a command processor running (``cqrs worker``)?"""


class UnknownCommandError(PipelineError):
    """The name is not one of the domain's commands."""


class LagError(PipelineError):
    """Kafka did not answer a lag query."""


class DeadLetterError(PipelineError):
    """A dead letter cannot be found, read or replayed; the message says why."""


# ValueError: the query service's POST /dlq/replay catches it around parse_selection.
class BadSelectionError(DeadLetterError, ValueError):
    """A selection of dead letters that means nothing (``commands-dlq/x/1``, no criteria)."""


# LookupError: the query service's GET /dlq/{topic}/... answers 404 on it.
class DeadLetterNotFoundError(DeadLetterError, LookupError):
    """No such dead-letter topic, partition, or record at that offset."""


class StoreUnavailableError(PipelineError):
    """The read store did not answer; the request may be retried."""


class ProjectionNotReadyError(PipelineError):
    """The projection has no tables yet (not migrated)."""


class UnknownProjectionError(PipelineError):
    """No search projection of the domain has this name."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        super().__init__(
            f"no search projection named {name!r}; search projections: {', '.join(known) or 'none'}"
        )
        self.name = name
        self.known = tuple(known)


class TokenError(PipelineError):
    """Not a consistency token of this service."""


class QueryParameterError(PipelineError):
    """A query parameter the projection cannot answer; the message says what it accepts."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.reason = reason


class SearchParameterError(PipelineError):
    """A search parameter the projection cannot answer; the message says what it accepts."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.reason = reason
