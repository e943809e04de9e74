#!/bin/sh
# Entry point of the StackShift server image: reads secrets from files, then
# runs the command (by default the server) in its place.
#
# For each variable below, <NAME>_FILE may name a file whose content (less
# trailing newlines) becomes <NAME>: Docker and Kubernetes secrets arrive as
# files, and variables set this way do not show in `docker inspect`.
# PGPASSWORD is the database password when DATABASE_URL carries none.
set -eu

for name in DATABASE_URL PGPASSWORD STACKSHIFT_ADMIN_KEY STACKSHIFT_METRICS_TOKEN; do
  eval "file=\${${name}_FILE:-}"
  [ -n "$file" ] || continue
  eval "value=\${${name}:-}"
  if [ -n "$value" ]; then
    echo "stackshift-entrypoint: both $name and ${name}_FILE are set; set one of them" >&2
    exit 1
  fi
  if [ ! -r "$file" ]; then
    echo "stackshift-entrypoint: ${name}_FILE: cannot read $file as uid $(id -u)" >&2
    exit 1
  fi
  value=$(cat "$file")
  export "$name=$value"
  unset "${name}_FILE"
done
unset file value

exec "$@"
