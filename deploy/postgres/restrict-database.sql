-- For a database of StackShift's own (as in compose.yaml): no other role may
-- connect to it or use its `public` schema. Run after stackshift-role.sql,
-- which grants the role `stackshift` what it needs.
\set ON_ERROR_STOP on
REVOKE ALL ON DATABASE :"DBNAME" FROM PUBLIC;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
