#!/bin/sh
# Generates the Python stubs of the StackShift protocol with protoc and
# grpc_python_plugin (Debian: protobuf-compiler, libprotobuf-dev for the
# well-known types, protobuf-compiler-grpc).
#
#   ./generate.sh          # into gen/ next to this script (git-ignored)
#   ./generate.sh /tmp/x   # into another directory
#
# The worker finds them in gen/, or in $STACKSHIFT_STUBS_DIR.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
proto_dir="$here/../../proto"
out=${1:-"$here/gen"}

plugin=$(command -v grpc_python_plugin) || {
  echo "grpc_python_plugin not found; install it with: apt-get install protobuf-compiler-grpc" >&2
  exit 1
}
command -v protoc >/dev/null || {
  echo "protoc not found; install it with: apt-get install protobuf-compiler libprotobuf-dev" >&2
  exit 1
}

mkdir -p "$out"
protoc -I "$proto_dir" \
  --python_out="$out" --pyi_out="$out" \
  --plugin=protoc-gen-grpc_python="$plugin" --grpc_python_out="$out" \
  "$proto_dir"/stackshift/jobs/v1/*.proto
