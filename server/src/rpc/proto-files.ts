import { fileURLToPath } from 'node:url'

/**
 * The .proto files: `proto/` at the repository root, three levels up from
 * this module both as source (server/src/rpc) and built (server/dist/rpc).
 * The container image copies them to the same place (deploy/Dockerfile).
 */
export const protoDir = fileURLToPath(new URL('../../../proto/', import.meta.url))

/** The services' files, relative to `protoDir`; they import the rest. */
export const serviceProtoFiles = [
  'stackshift/jobs/v1/run_service.proto',
  'stackshift/jobs/v1/worker_service.proto',
  'stackshift/jobs/v1/state_service.proto',
]
