-- Least-privilege roles for the read models. Run once per database as a superuser
-- (or the database owner), with psql variables for the passwords:
--
--   psql "$ADMIN_URL" -v owner_password="$OWNER_PW" -v sink_password="$SINK_PW" \
--        -v reader_password="$READER_PW" -f deploy/postgres/roles.sql
--
-- cqrs_owner   owns every read-model object: runs migrations and rebuilds (DDL).
-- cqrs_sink    what the sink processes log in as: reads and writes rows of the
--              tables cqrs_owner creates, and nothing else (no DDL, no other schemas).
-- cqrs_reader  what query services log in as: SELECT on the read models only.
\set ON_ERROR_STOP on

CREATE ROLE cqrs_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE cqrs_sink LOGIN PASSWORD :'sink_password';
CREATE ROLE cqrs_reader LOGIN PASSWORD :'reader_password';

-- Nobody but the owner creates objects: take PUBLIC's CREATE away (PostgreSQL 15
-- already does for the public schema) and let only the owner create schemas, since
-- every projection's table set (and every rebuild's shadow set) is a schema of its own.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON DATABASE :"DBNAME" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"DBNAME" TO cqrs_owner, cqrs_sink, cqrs_reader;
-- The sinks stage each batch in a session-local temporary table (COPY, then one upsert).
GRANT TEMPORARY ON DATABASE :"DBNAME" TO cqrs_sink;
GRANT CREATE ON DATABASE :"DBNAME" TO cqrs_owner;

-- The base schema (sinks.postgres_schema, default read_models) and what the owner
-- creates later, in it and in new table-set schemas, is granted as it appears.
CREATE SCHEMA IF NOT EXISTS read_models AUTHORIZATION cqrs_owner;
GRANT USAGE ON SCHEMA read_models TO cqrs_sink, cqrs_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE cqrs_owner GRANT USAGE ON SCHEMAS TO cqrs_sink, cqrs_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE cqrs_owner
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO cqrs_sink;
ALTER DEFAULT PRIVILEGES FOR ROLE cqrs_owner
    GRANT USAGE, SELECT ON SEQUENCES TO cqrs_sink;
ALTER DEFAULT PRIVILEGES FOR ROLE cqrs_owner GRANT SELECT ON TABLES TO cqrs_reader;

-- The runtime roles cannot grant further or own anything; keep them out of
-- maintenance too.
ALTER ROLE cqrs_sink NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE cqrs_reader NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
