import { Server, type ServerCredentials, type ServerInterceptor, type ServiceDefinition } from '@grpc/grpc-js'
import { AdminServiceService, type AdminServiceServer } from '@stackshift/proto/admin-service'
import { JobServiceService, type JobServiceServer } from '@stackshift/proto/job-service'
import { protocolLimits } from '@stackshift/proto/limits'
import { OperatorServiceService, type OperatorServiceServer } from '@stackshift/proto/operator-service'
import { RunServiceService, type RunServiceServer } from '@stackshift/proto/run-service'
import { ScheduleServiceService, type ScheduleServiceServer } from '@stackshift/proto/schedule-service'
import { StateServiceService, type StateServiceServer } from '@stackshift/proto/state-service'
import { WorkerServiceService, type WorkerServiceServer } from '@stackshift/proto/worker-service'
import { HealthImplementation } from 'grpc-health-check'
import { withDecodeErrors } from './decode-errors.js'
import { addReflection } from './reflection.js'

/** The implementations of StackShift's services. */
export interface StackShiftServices {
  runs: RunServiceServer
  workers: WorkerServiceServer
  state: StateServiceServer
  admin: AdminServiceServer
  operator: OperatorServiceServer
  schedules: ScheduleServiceServer
  jobs: JobServiceServer
}

/**
 * The generated definition of each service, by the name of its
 * implementation: what the gRPC server adds, and what the console's Connect
 * endpoint (connect-unary.ts) serves, so both offer every method of every service.
 */
export const stackShiftServiceDefinitions = {
  runs: RunServiceService,
  workers: WorkerServiceService,
  state: StateServiceService,
  admin: AdminServiceService,
  operator: OperatorServiceService,
  schedules: ScheduleServiceService,
  jobs: JobServiceService,
} satisfies Record<keyof StackShiftServices, ServiceDefinition>

/** A gRPC server with StackShift's services, the health service and reflection. */
export interface GrpcServer {
  server: Server
  /** Reports every service (and the server as a whole, '') as serving or not to health checks. */
  setHealth: (state: 'SERVING' | 'NOT_SERVING') => void
}

const healthNames = [
  '',
  'stackshift.jobs.v1.RunService',
  'stackshift.jobs.v1.WorkerService',
  'stackshift.jobs.v1.StateService',
  'stackshift.jobs.v1.AdminService',
  'stackshift.jobs.v1.OperatorService',
  'stackshift.jobs.v1.ScheduleService',
  'stackshift.jobs.v1.JobService',
]

/**
 * Builds the gRPC server: StackShift's services, each refusing requests it
 * cannot decode with INVALID_ARGUMENT (decode-errors.ts), behind the given
 * interceptors (the access check, when auth is on); grpc.health.v1 (serving
 * from the start) and server reflection, open to all.
 */
export function createGrpcServer(options: {
  maxMessageBytes: number
  maxConcurrentStreams: number
  services: StackShiftServices
  interceptors: ServerInterceptor[]
}): GrpcServer {
  const server = new Server({
    interceptors: options.interceptors,
    'grpc.max_receive_message_length': options.maxMessageBytes,
    'grpc.max_send_message_length': options.maxMessageBytes,
    // Bounds the calls one connection has in flight. gRPC clients (grpc-js
    // among them) do not fail a call beyond it: they hold it until one of the
    // connection's streams ends, and it fails only if its deadline passes
    // first. The SDK runs every call of a client on one connection (a worker
    // stream, the enqueue stream, each long-poll: WaitForRun for up to five
    // minutes, ClaimTask, AcquireLock), so the default is far above what it
    // keeps open, lest a queued call wait behind long-polls.
    'grpc.max_concurrent_streams': options.maxConcurrentStreams,
    // Clients ping idle connections to notice dead ones; allow it, with room for timer jitter.
    'grpc.http2.min_ping_interval_without_data_ms': protocolLimits.keepalivePingIntervalMs / 2,
    'grpc.keepalive_permit_without_calls': 1,
  })
  for (const name of Object.keys(stackShiftServiceDefinitions) as Array<keyof StackShiftServices>) {
    server.addService(withDecodeErrors(stackShiftServiceDefinitions[name]), options.services[name])
  }
  const health = new HealthImplementation(Object.fromEntries(healthNames.map((name) => [name, 'SERVING' as const])))
  health.addToServer(server)
  addReflection(server)
  return {
    server,
    setHealth: (state) => {
      for (const name of healthNames) health.setStatus(name, state)
    },
  }
}

/** Listens on `host:port` (port 0: a free one) with `credentials` (tls.ts). Resolves to the port bound. */
export function bindGrpcServer(server: Server, host: string, port: number, credentials: ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(`${host}:${port}`, credentials, (error, boundPort) => (error ? reject(error) : resolve(boundPort))),
  )
}
