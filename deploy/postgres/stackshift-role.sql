-- The role the StackShift servers log in as, with least privilege: it owns the
-- schema `stackshift`, where the server creates and migrates its tables, and
-- nothing else; it is no superuser, cannot create roles, databases or other
-- schemas, and may only connect to this database. (The server creates the
-- schema only when it is missing, so a role that owns it needs no more.)
--
-- Run it once, as a superuser (or your provider's administrator role), in
-- StackShift's database, with the role's password in a file:
--   psql "postgres://postgres@HOST:5432/stackshift" -v password_file=stackshift-db-password -f stackshift-role.sql
-- compose.yaml runs it when PostgreSQL initialises an empty volume, with the
-- password from the secret /run/secrets/stackshift_db_password.
\set ON_ERROR_STOP on
\if :{?password_file}
\else
\set password_file /run/secrets/stackshift_db_password
\endif
\if `test -s :'password_file' && echo true || echo false`
\else
DO $$ BEGIN RAISE EXCEPTION 'stackshift-role.sql: the password file (password_file) is missing or empty'; END $$;
\endif
-- Read by psql, so the password is on no command line; the statements that
-- carry it are not logged, not even when they fail.
\set password `cat :'password_file'`
SET log_statement = none;
SET log_min_error_statement = panic;
CREATE ROLE stackshift LOGIN PASSWORD :'password';
\unset password
RESET log_min_error_statement;
RESET log_statement;
GRANT CONNECT ON DATABASE :"DBNAME" TO stackshift;
CREATE SCHEMA stackshift AUTHORIZATION stackshift;
