import {
  ConfigureJobRequest,
  ConfigureQueueRequest,
  GetJobRequest,
  GetQueueRequest,
  JobServiceService,
  ListJobsRequest,
} from '@stackshift/proto/job-service'
import { randomUUID } from 'node:crypto'
import * as grpc from '@grpc/grpc-js'
import {
  AdminServiceService,
  ApiKeyScope,
  CreateApiKeyRequest,
  ListApiKeysRequest,
  RevokeApiKeyRequest,
} from '@stackshift/proto/admin-service'
import {
  BulkActionKind,
  GetBulkActionRequest,
  GetCallerRequest,
  GetQueueStatsRequest,
  ListBulkActionsRequest,
  ListEventsRequest,
  ListWorkersRequest,
  OperatorServiceService,
  ReplayRunRequest,
  RerunRunRequest,
  StartBulkActionRequest,
} from '@stackshift/proto/operator-service'
import { RunStatus, StepKind } from '@stackshift/proto/run'
import {
  BackfillScheduleRequest,
  CreateScheduleRequest,
  DeleteScheduleRequest,
  GetScheduleRequest,
  ListSchedulesRequest,
  PauseScheduleRequest,
  ResumeScheduleRequest,
  ScheduleOverlapPolicy,
  ScheduleServiceService,
  TriggerScheduleRequest,
} from '@stackshift/proto/schedule-service'
import {
  CancelRunRequest,
  EnqueueBatchRequest,
  EnqueueRequest,
  EnqueueStreamRequest,
  EnqueueStreamResponse,
  GetRunRequest,
  ListRunsRequest,
  RunServiceService,
  SendEventRequest,
  WaitForRunRequest,
} from '@stackshift/proto/run-service'
import {
  AcquireLockRequest,
  CompareAndSetRequest,
  DeleteRequest,
  ExtendLockRequest,
  GetRequest,
  IncrementRequest,
  ListRequest,
  ReleaseLockRequest,
  SetIfAbsentRequest,
  SetRequest,
  StateServiceService,
} from '@stackshift/proto/state-service'
import {
  ClaimTaskRequest,
  CompleteRunRequest,
  CompleteStepRequest,
  ConnectRequest,
  ConnectResponse,
  FailRunRequest,
  HeartbeatRequest,
  ReleaseRunRequest,
  SuspendRunRequest,
  WorkerServiceService,
} from '@stackshift/proto/worker-service'
import { expect, it } from 'vitest'
import { useTestEnvironment } from './support/environment.js'
import { checkHealth } from './support/health.js'

/*
 * Random and mutated bytes, sent to every method of RunService, WorkerService
 * and StateService for a bounded time. Mutations start from valid requests of
 * each method, encoded with the generated encoders (with real leases, so the
 * writes get past their validation), and flip, replace, insert, delete,
 * duplicate and splice bytes; a quarter of the requests are random bytes.
 * Every answer must be a clear status: never INTERNAL or UNKNOWN, also not in
 * the results of the two streams. Afterwards the server must be healthy and
 * enqueue as before, and a namespace no fuzzed request could name must hold
 * exactly what it held before.
 *
 * The seed is printed; STACKSHIFT_FUZZ_SEED repeats a run (what a run covers
 * also depends on how many requests fit in the time). STACKSHIFT_FUZZ_MS sets
 * the time.
 */

const env = useTestEnvironment()
const fuzzSeed = Number(process.env.STACKSHIFT_FUZZ_SEED ?? 20_261_207)
const budgetMs = Number(process.env.STACKSHIFT_FUZZ_MS ?? 15_000)
const inFlightMax = 8
const callDeadlineMs = 1500
const fuzzNamespace = 'fuzz'
/** Named by no seed: mutated bytes would have to write this exact name. */
const guardedNamespace = 'guarded-7c1e9a4b2f'

/** A small deterministic generator (mulberry32). */
function randomSource(start: number) {
  let state = start | 0
  const next = () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const below = (n: number) => Math.floor(next() * n)
  return { next, below, pick: <T>(items: readonly T[]): T => items[below(items.length)]! }
}

type Random = ReturnType<typeof randomSource>

const interestingBytes = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x22, 0x5c]

/** One to three byte-level mutations of `bytes`; `others` are spliced in sometimes. */
function mutate(random: Random, bytes: Uint8Array, others: readonly Uint8Array[]): Buffer {
  let out = Buffer.from(bytes)
  for (let round = 1 + random.below(3); round > 0; round--) {
    const at = random.below(out.length + 1)
    switch (random.below(9)) {
      case 0:
        if (out.length > 0) out[Math.min(at, out.length - 1)]! ^= 1 << random.below(8)
        break
      case 1:
        if (out.length > 0) out[Math.min(at, out.length - 1)] = random.below(256)
        break
      case 2:
        if (out.length > 0) out[Math.min(at, out.length - 1)] = random.pick(interestingBytes)
        break
      case 3:
        out = Buffer.concat([out.subarray(0, at), randomBytes(random, 1 + random.below(8)), out.subarray(at)])
        break
      case 4:
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + random.below(8))])
        break
      case 5: {
        const end = Math.min(out.length, at + 1 + random.below(16))
        out = Buffer.concat([out.subarray(0, end), out.subarray(at, end), out.subarray(end)])
        break
      }
      case 6:
        out = out.subarray(0, at)
        break
      case 7:
        // Protobuf merges concatenated messages: fields of both, repeated ones joined.
        out = Buffer.concat([out, random.pick(others)])
        break
      default:
        // A field of any number and wire type, with a varint of up to ten 0xff bytes.
        out = Buffer.concat([out, Buffer.from([random.below(256)]), Buffer.alloc(1 + random.below(10), 0xff), Buffer.from([0x01])])
    }
  }
  return out
}

function randomBytes(random: Random, length: number): Buffer {
  return Buffer.from(Array.from({ length }, () => random.below(256)))
}

/** A valid request: its bytes, and a way to make a copy with one field set to an unusual value. */
interface Seed {
  bytes: Uint8Array
  /** The request with one field (at any depth) changed; undefined when the encoder refuses the value. */
  variant(random: Random): Uint8Array | undefined
}

function seed<T extends object>(type: { encode(message: T): { finish(): Uint8Array } }, message: T): Seed {
  return {
    bytes: type.encode(message).finish(),
    variant: (random) => {
      const copy = structuredClone(message)
      changeOneField(random, copy)
      try {
        return type.encode(copy).finish()
      } catch {
        return undefined
      }
    },
  }
}

const unusualStrings = [
  '',
  '\u0000',
  'a\u0000b',
  '\ud800',
  '\uffff',
  '\u202e',
  ' ',
  'x'.repeat(1000),
  'ü'.repeat(300),
  'x'.repeat(70_000),
  "'; DROP TABLE stackshift.runs; --",
  '%s%n',
  '{"a":"\\ud800"}',
  '"\\u0000"',
  '[1e999999]',
  '[1e131071]',
  '-0',
  'null',
  '{}',
  '[]',
  '{"a":',
  '['.repeat(2000) + ']'.repeat(2000),
  '0190c5a5-0000-7000-8000-000000000000',
  '00000000-0000-0000-0000-000000000000',
  'default',
  fuzzNamespace,
]
const unusualNumbers = [
  0,
  -1,
  1,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 53 - 1,
  -(2 ** 53 - 1),
  1e15,
  -1e15,
  0.5,
  -0,
  NaN,
  Infinity,
]
const unusualDates = [0, -62_135_596_800_001, 253_402_300_800_000, 8.64e15, -8.64e15, Number.NaN].map((ms) => new Date(ms))

/** Sets one field of `root` (at any depth, in arrays too) to an unusual value of its type, or empties or grows an array. */
function changeOneField(random: Random, root: object): void {
  const slots: Array<{ holder: Record<string, unknown>; key: string; value: unknown }> = []
  const visit = (holder: Record<string, unknown>) => {
    for (const [key, value] of Object.entries(holder)) {
      if (key === '$case') continue
      slots.push({ holder, key, value })
      if (typeof value === 'object' && value !== null && !(value instanceof Date) && !(value instanceof Uint8Array)) {
        visit(value as Record<string, unknown>)
      }
    }
  }
  visit(root as Record<string, unknown>)
  if (slots.length === 0) return
  const { holder, key, value } = random.pick(slots)
  if (Array.isArray(value)) holder[key] = random.next() < 0.5 ? [] : [...(value as unknown[]), ...(value as unknown[])]
  else if (typeof value === 'string') holder[key] = random.pick(unusualStrings)
  else if (typeof value === 'number') holder[key] = random.pick(unusualNumbers)
  else if (typeof value === 'boolean') holder[key] = !value
  else if (value instanceof Date) holder[key] = random.pick(unusualDates)
  else if (value === undefined) holder[key] = random.pick(unusualStrings)
}

/** What the fuzzer saw: a status per call, findings for the unclear ones. */
interface Tally {
  calls: number
  byCode: Map<number, number>
  findings: Array<{ method: string; code: number; details: string; request: string }>
}

function statusName(code: number): string {
  return (grpc.status as unknown as Record<number, string | undefined>)[code] ?? String(code)
}

/** Statuses that say nothing a client can act on. */
const unclearCodes = new Set<number>([grpc.status.INTERNAL, grpc.status.UNKNOWN])

function record(tally: Tally, method: string, code: number, details: string, request: Uint8Array): void {
  tally.byCode.set(code, (tally.byCode.get(code) ?? 0) + 1)
  if (unclearCodes.has(code)) {
    tally.findings.push({ method, code, details, request: Buffer.from(request).toString('base64') })
  }
}

const asBuffer = (bytes: Buffer) => bytes

function callUnary(client: grpc.Client, path: string, request: Buffer): Promise<{ code: grpc.status; details: string }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, asBuffer, asBuffer, request, new grpc.Metadata(), { deadline: Date.now() + callDeadlineMs }, (error) =>
      resolve(error ? { code: error.code, details: error.details } : { code: grpc.status.OK, details: '' }),
    )
  })
}

/** Sends `messages` on a stream and half-closes it; resolves with its status and the result codes in what it answered. */
function callStream(
  client: grpc.Client,
  path: string,
  messages: readonly Buffer[],
  resultCodes: (answer: Buffer) => Array<{ code: number; message: string }>,
): Promise<{ code: grpc.status; details: string; results: Array<{ code: number; message: string }> }> {
  return new Promise((resolve) => {
    const results: Array<{ code: number; message: string }> = []
    const stream = client.makeBidiStreamRequest(path, asBuffer, asBuffer, new grpc.Metadata(), { deadline: Date.now() + callDeadlineMs })
    stream.on('data', (answer: Buffer) => {
      try {
        results.push(...resultCodes(answer))
      } catch {
        results.push({ code: -1, message: 'the server sent a message that does not decode' })
      }
    })
    stream.on('error', () => {})
    stream.on('status', (final: grpc.StatusObject) => resolve({ code: final.code, details: final.details, results }))
    for (const message of messages) stream.write(message)
    stream.end()
  })
}

/** Every row of the guarded namespace, as JSON text. */
async function guardedSnapshot(): Promise<string> {
  const { rows } = await env.db.query<{ snapshot: unknown }>(
    `SELECT json_build_object(
       'runs', (SELECT json_agg(r ORDER BY r.id) FROM stackshift.runs r WHERE r.namespace = $1),
       'steps', (SELECT json_agg(s ORDER BY s.run_id, s.step_id) FROM stackshift.steps s
                 WHERE s.run_id IN (SELECT id FROM stackshift.runs WHERE namespace = $1)),
       'attempts', (SELECT json_agg(a ORDER BY a.run_id, a.attempt) FROM stackshift.attempts a
                    WHERE a.run_id IN (SELECT id FROM stackshift.runs WHERE namespace = $1)),
       'state', (SELECT json_agg(e ORDER BY e.key) FROM stackshift.state e WHERE e.namespace = $1),
       'locks', (SELECT json_agg(l ORDER BY l.key) FROM stackshift.locks l WHERE l.namespace = $1),
       'events', (SELECT json_agg(v ORDER BY v.id) FROM stackshift.events v WHERE v.namespace = $1)
     ) AS snapshot`,
    [guardedNamespace],
  )
  return JSON.stringify(rows[0]!.snapshot)
}

/** Runs, a completed run with steps, State Store entries, a lock and an event in `namespace`. */
async function populate(namespace: string): Promise<void> {
  const raw = env.raw
  for (let i = 0; i < 3; i++) await raw.runs('Enqueue', { namespace, run: { queue: 'kept', job: 'kept', payload_json: `{"i":${i}}` } })
  const { run_id } = await raw.runs('Enqueue', { namespace, run: { queue: 'done', job: 'done', payload_json: '[1]' } })
  const { tasks } = await raw.workers('ClaimTask', { namespace, queues: ['done'], jobs: ['done'], wait_ms: 5000 })
  const lease = { run_id, lease_token: tasks[0]!.lease_token }
  await raw.workers('CompleteStep', { ...lease, step_id: 'first', result_json: '{"ok":true}' })
  await raw.workers('CompleteRun', { ...lease, result_json: '"finished"' })
  await raw.state('Set', { namespace, key: 'config', value_json: '{"limit":3}' })
  await raw.state('Increment', { namespace, key: 'counter', delta: 5 })
  await raw.state('AcquireLock', { namespace, key: 'lock', ttl_ms: 3_600_000 })
  await raw.runs('SendEvent', { namespace, id: 'event-1', name: 'arrived', data_json: '{"n":1}' })
}

it('random and mutated requests to every method get clear statuses, and leave the server and other data as they were', async () => {
  await populate(guardedNamespace)
  const before = await guardedSnapshot()

  // Real leases in the fuzzed namespace, so worker writes get past their validation.
  const { raw } = env
  const ids: string[] = []
  for (let i = 0; i < 12; i++) ids.push((await raw.runs('Enqueue', { namespace: fuzzNamespace, run: { queue: 'fz', job: 'fj' } })).run_id)
  const { tasks } = await raw.workers('ClaimTask', { namespace: fuzzNamespace, queues: ['fz'], jobs: ['fj'], max_tasks: 12, wait_ms: 5000 })
  const leases = tasks.map((task) => ({ runId: task.run_id, leaseToken: task.lease_token }))
  const lease = leases[0]!
  const runScope = { runId: lease.runId, leaseToken: lease.leaseToken, opId: 'op-1' }
  const now = Date.now()
  const namespace = fuzzNamespace

  const newRun = {
    queue: 'fz',
    job: 'fj',
    payloadJson: '{"a":[1,2.5,"x\\u00e9"],"b":{"c":null,"d":true}}',
    idempotencyKey: 'key-1',
    idempotencyTtlMs: 60_000,
    priority: 3,
    maxAttempts: 2,
    traceContext: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
  }
  const unarySeeds: Record<string, Seed[]> = {
    [RunServiceService.enqueue.path]: [
      seed(EnqueueRequest, EnqueueRequest.fromPartial({ namespace, run: newRun })),
      seed(EnqueueRequest, EnqueueRequest.fromPartial({ namespace, run: { ...newRun, runAt: new Date(now + 60_000) } })),
      seed(EnqueueRequest, EnqueueRequest.fromPartial({ run: { job: 'fj', delayMs: 5000 } })),
    ],
    [RunServiceService.enqueueBatch.path]: [
      seed(EnqueueBatchRequest, EnqueueBatchRequest.fromPartial({ namespace, runs: [newRun, { job: 'fj', payloadJson: '1e3' }] })),
    ],
    [RunServiceService.getRun.path]: [seed(GetRunRequest, { namespace, runId: ids[0]! })],
    [RunServiceService.waitForRun.path]: [seed(WaitForRunRequest, { namespace, runId: ids[1]!, timeoutMs: 50 })],
    [RunServiceService.sendEvent.path]: [seed(SendEventRequest, { namespace, id: 'e-1', name: 'ev', dataJson: '{"x":[1,{"y":2}]}' })],
    [RunServiceService.cancelRun.path]: [seed(CancelRunRequest, { namespace, runId: ids[2]!, reason: 'fuzzed' })],
    [RunServiceService.listRuns.path]: [
      seed(
        ListRunsRequest,
        ListRunsRequest.fromPartial({
          namespace,
          queue: 'fz',
          job: 'fj',
          status: RunStatus.RUN_STATUS_QUEUED,
          createdAfter: new Date(now - 60_000),
          createdBefore: new Date(now + 60_000),
          limit: 10,
        }),
      ),
    ],
    [WorkerServiceService.claimTask.path]: [
      seed(
        ClaimTaskRequest,
        ClaimTaskRequest.fromPartial({ namespace, workerId: 'fw', queues: ['fz', 'other'], jobs: ['fj'], maxTasks: 2, leaseMs: 1000 }),
      ),
    ],
    [WorkerServiceService.heartbeat.path]: [seed(HeartbeatRequest, { leases: leases.slice(0, 3), leaseMs: 60_000 })],
    [WorkerServiceService.completeStep.path]: [
      seed(
        CompleteStepRequest,
        CompleteStepRequest.fromPartial({
          ...leases[1]!,
          stepId: 'step-1',
          resultJson: '{"r":[1,2]}',
          durationMs: 5,
          kind: StepKind.STEP_KIND_RUN,
        }),
      ),
    ],
    [WorkerServiceService.completeRun.path]: [seed(CompleteRunRequest, { ...leases[2]!, resultJson: '"done"' })],
    [WorkerServiceService.failRun.path]: [
      seed(
        FailRunRequest,
        FailRunRequest.fromPartial({
          ...leases[3]!,
          error: { name: 'Error', message: 'failed', stack: 'at x' },
          retryDelayMs: 100,
          failedStepId: 'step-2',
          failedStepDurationMs: 3,
        }),
      ),
    ],
    [WorkerServiceService.releaseRun.path]: [seed(ReleaseRunRequest, leases[4]!)],
    [WorkerServiceService.suspendRun.path]: [
      seed(SuspendRunRequest, {
        ...leases[5]!,
        stepId: 'nap',
        wait: { $case: 'sleep', sleep: { wakeAt: new Date(now + 1000) } },
      }),
      seed(SuspendRunRequest, {
        ...leases[6]!,
        stepId: 'wait',
        wait: { $case: 'event', event: { name: 'ev', matchJson: '{"x":[1]}', timeoutMs: 1000, lookbackMs: 0 } },
      }),
      seed(SuspendRunRequest, {
        ...leases[7]!,
        stepId: 'kid:0',
        wait: {
          $case: 'invoke',
          invoke: {
            children: [
              { stepId: 'kid:0', queue: 'fz', job: 'fk', payloadJson: '{"n":[1]}', timeoutMs: 1000, maxAttempts: 2, priority: 1 },
              { stepId: 'kid:1', queue: '', job: 'fk', payloadJson: '', timeoutMs: 60_000, maxAttempts: 0, priority: 0 },
            ],
          },
        },
      }),
    ],
    [StateServiceService.get.path]: [
      seed(GetRequest, { namespace, key: 'k', run: undefined }),
      seed(GetRequest, { namespace, key: 'k', run: runScope }),
    ],
    [StateServiceService.set.path]: [
      seed(SetRequest, SetRequest.fromPartial({ namespace, key: 'k', valueJson: '{"v":1}', ttlMs: 60_000, run: runScope })),
    ],
    [StateServiceService.delete.path]: [seed(DeleteRequest, DeleteRequest.fromPartial({ namespace, key: 'gone' }))],
    [StateServiceService.increment.path]: [
      seed(IncrementRequest, IncrementRequest.fromPartial({ namespace, key: 'n', delta: 1.5, ttlMs: 60_000 })),
    ],
    [StateServiceService.setIfAbsent.path]: [
      seed(SetIfAbsentRequest, SetIfAbsentRequest.fromPartial({ namespace, key: 'once', valueJson: 'true' })),
    ],
    [StateServiceService.compareAndSet.path]: [
      seed(CompareAndSetRequest, CompareAndSetRequest.fromPartial({ namespace, key: 'k', expectedVersion: 1, valueJson: '[null]' })),
    ],
    [StateServiceService.list.path]: [seed(ListRequest, { namespace, prefix: 'k', limit: 10, cursor: '' })],
    [StateServiceService.acquireLock.path]: [seed(AcquireLockRequest, { namespace, key: 'lock', ttlMs: 1000, waitMs: 0 })],
    [StateServiceService.extendLock.path]: [seed(ExtendLockRequest, { namespace, key: 'lock', lockId: randomUUID(), ttlMs: 1000 })],
    [StateServiceService.releaseLock.path]: [seed(ReleaseLockRequest, { namespace, key: 'lock', lockId: randomUUID() })],
    [AdminServiceService.createApiKey.path]: [
      seed(
        CreateApiKeyRequest,
        CreateApiKeyRequest.fromPartial({
          namespace,
          scopes: [ApiKeyScope.API_KEY_SCOPE_READ, ApiKeyScope.API_KEY_SCOPE_WORKER],
          name: 'fuzzed',
          expiresAt: new Date(now + 3_600_000),
        }),
      ),
    ],
    [AdminServiceService.listApiKeys.path]: [seed(ListApiKeysRequest, { namespace, includeRevoked: true })],
    [AdminServiceService.revokeApiKey.path]: [seed(RevokeApiKeyRequest, { id: '0123456789abcdef' })],
    [OperatorServiceService.rerunRun.path]: [seed(RerunRunRequest, { namespace, runId: ids[0]!, payloadJson: '{"edited":[1,2.5]}' })],
    [OperatorServiceService.replayRun.path]: [seed(ReplayRunRequest, { namespace, runId: ids[0]!, fromStepId: '' })],
    [OperatorServiceService.startBulkAction.path]: [
      seed(
        StartBulkActionRequest,
        StartBulkActionRequest.fromPartial({
          namespace,
          kind: BulkActionKind.BULK_ACTION_KIND_RERUN,
          selection: {
            queue: 'fz',
            status: RunStatus.RUN_STATUS_FAILED,
            createdAfter: new Date(now - 60_000),
            payloadMatchJson: '{"a":1}',
          },
          dryRun: true,
        }),
      ),
    ],
    [OperatorServiceService.getBulkAction.path]: [seed(GetBulkActionRequest, { namespace, id: randomUUID() })],
    [OperatorServiceService.listBulkActions.path]: [seed(ListBulkActionsRequest, { namespace, limit: 5 })],
    [OperatorServiceService.listEvents.path]: [seed(ListEventsRequest, { namespace, name: 'e', limit: 5, cursor: '' })],
    [OperatorServiceService.listWorkers.path]: [seed(ListWorkersRequest, { namespace })],
    [OperatorServiceService.getQueueStats.path]: [seed(GetQueueStatsRequest, { namespace, queue: 'fz' })],
    [OperatorServiceService.getCaller.path]: [seed(GetCallerRequest, {})],
    [ScheduleServiceService.createSchedule.path]: [
      seed(
        CreateScheduleRequest,
        CreateScheduleRequest.fromPartial({
          namespace,
          schedule: {
            id: 'fz-schedule',
            cron: '*/5 * * * * *',
            timezone: 'Europe/Paris',
            queue: 'fz',
            job: 'fj',
            payloadJson: '{"n":1}',
            overlap: ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE,
            catchupWindowMs: 60_000,
            paused: true,
          },
        }),
      ),
    ],
    [JobServiceService.configureJob.path]: [
      seed(
        ConfigureJobRequest,
        ConfigureJobRequest.fromPartial({
          namespace,
          job: 'fzj',
          policies: {
            concurrency: { limit: 2, key: 'a.b' },
            rateLimit: { limit: 5, periodMs: 1000, key: 'a.b' },
            debounce: { periodMs: 500, key: 'c' },
            fairness: { key: 'a.b' },
          },
        }),
      ),
    ],
    [ScheduleServiceService.getSchedule.path]: [seed(GetScheduleRequest, { namespace, scheduleId: 'fz-schedule' })],
    [ScheduleServiceService.listSchedules.path]: [seed(ListSchedulesRequest, { namespace, limit: 5, cursor: '' })],
    [ScheduleServiceService.deleteSchedule.path]: [seed(DeleteScheduleRequest, { namespace, scheduleId: 'fz-gone' })],
    [ScheduleServiceService.pauseSchedule.path]: [seed(PauseScheduleRequest, { namespace, scheduleId: 'fz-schedule' })],
    [ScheduleServiceService.resumeSchedule.path]: [seed(ResumeScheduleRequest, { namespace, scheduleId: 'fz-schedule' })],
    [ScheduleServiceService.triggerSchedule.path]: [seed(TriggerScheduleRequest, { namespace, scheduleId: 'fz-schedule' })],
    [ScheduleServiceService.backfillSchedule.path]: [
      seed(BackfillScheduleRequest, {
        namespace,
        scheduleId: 'fz-schedule',
        startAt: new Date(now - 60_000),
        endAt: new Date(now),
      }),
    ],
    [JobServiceService.getJob.path]: [seed(GetJobRequest, { namespace, job: 'fzj' })],
    [JobServiceService.listJobs.path]: [seed(ListJobsRequest, { namespace })],
    [JobServiceService.configureQueue.path]: [seed(ConfigureQueueRequest, { namespace, queue: 'fzq', policies: { concurrency: 3 } })],
    [JobServiceService.getQueue.path]: [seed(GetQueueRequest, { namespace, queue: 'fzq' })],
  }
  const operation = (id: number) =>
    seed(
      ConnectRequest,
      ConnectRequest.fromPartial({
        addedSlots: 1,
        operations: [
          { id, operation: { $case: 'heartbeat', heartbeat: { leases: leases.slice(7, 9), leaseMs: 0 } } },
          { id: id + 1, operation: { $case: 'completeStep', completeStep: { ...leases[9]!, stepId: 's', resultJson: '{"z":0}' } } },
          { id: id + 2, operation: { $case: 'completeRun', completeRun: { ...leases[10]!, resultJson: 'null' } } },
          { id: id + 3, operation: { $case: 'failRun', failRun: { ...leases[11]!, error: { name: 'E', message: 'm', stack: '' } } } },
          { id: id + 4, operation: { $case: 'releaseRun', releaseRun: leases[11]! } },
          {
            id: id + 5,
            operation: {
              $case: 'suspendRun',
              suspendRun: { ...leases[8]!, stepId: 'zz', wait: { $case: 'sleep', sleep: { wakeAt: new Date(now) } } },
            },
          },
        ],
      }),
    )
  /** The stream methods: valid first messages, valid later ones, and how to read the codes in what the server answers. */
  interface StreamSeeds {
    first: Seed[]
    rest: Seed[]
    results: (answer: Buffer) => Array<{ code: number; message: string }>
  }
  const streamSeeds: Record<string, StreamSeeds> = {
    [WorkerServiceService.connect.path]: {
      first: [
        seed(
          ConnectRequest,
          ConnectRequest.fromPartial({
            hello: { namespace, workerId: 'fw', queues: ['fz'], jobs: ['fj'], slots: 2, leaseMs: 1000, sdk: 'fuzz' },
          }),
        ),
      ],
      rest: [operation(1), operation(100), seed(ConnectRequest, ConnectRequest.fromPartial({ drain: true }))],
      results: (answer: Buffer) => ConnectResponse.decode(answer).results,
    },
    [RunServiceService.enqueueStream.path]: {
      first: [seed(EnqueueStreamRequest, { id: 1, enqueue: EnqueueRequest.fromPartial({ namespace, run: newRun }) })],
      rest: [
        seed(EnqueueStreamRequest, {
          id: 2,
          enqueue: EnqueueRequest.fromPartial({ namespace, run: { job: 'fj', payloadJson: '[]' } }),
        }),
      ],
      results: (answer: Buffer) => [EnqueueStreamResponse.decode(answer)],
    },
  }
  const methods: string[] = [
    ...Object.values(RunServiceService),
    ...Object.values(WorkerServiceService),
    ...Object.values(StateServiceService),
    ...Object.values(AdminServiceService),
    ...Object.values(OperatorServiceService),
    ...Object.values(ScheduleServiceService),
  ].map((method) => method.path)
  expect(methods.filter((path) => !(path in unarySeeds) && !(path in streamSeeds))).toEqual([])
  const allSeeds = [...Object.values(unarySeeds).flat(), ...Object.values(streamSeeds).flatMap((s) => [...s.first, ...s.rest])].map(
    (one) => one.bytes,
  )

  const random = randomSource(fuzzSeed)
  /** A fifth random bytes, two fifths a seed with its bytes mutated, two fifths a seed with a field set to an unusual value. */
  const fuzzedBytes = (seeds: readonly Seed[]): Buffer => {
    const choice = random.next()
    if (choice < 0.2) return randomBytes(random, random.below(random.next() < 0.5 ? 24 : 400))
    const chosen = random.pick(seeds)
    if (choice < 0.6) return mutate(random, chosen.bytes, allSeeds)
    return Buffer.from(chosen.variant(random) ?? chosen.bytes)
  }
  const tally: Tally = { calls: 0, byCode: new Map(), findings: [] }
  const client = new grpc.Client(env.server.address, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 << 20 })
  console.log(`fuzz: seed ${fuzzSeed} (STACKSHIFT_FUZZ_SEED repeats it), ${budgetMs} ms`)

  const oneCall = async (): Promise<void> => {
    const path = random.pick(methods)
    tally.calls++
    const stream = streamSeeds[path]
    if (!stream) {
      const request = fuzzedBytes(unarySeeds[path]!)
      const { code, details } = await callUnary(client, path, request)
      record(tally, path, code, details, request)
      return
    }
    // A valid or fuzzed first message, then fuzzed ones.
    const messages = [random.next() < 0.5 ? Buffer.from(random.pick(stream.first).bytes) : fuzzedBytes(stream.first)]
    for (let n = random.below(4); n > 0; n--) messages.push(fuzzedBytes(random.next() < 0.8 ? stream.rest : stream.first))
    const { code, details, results } = await callStream(client, path, messages, stream.results)
    const sent = Buffer.concat(messages)
    record(tally, path, code, details, sent)
    for (const result of results) {
      record(tally, `${path} (result)`, result.code === -1 ? grpc.status.UNKNOWN : result.code, result.message, sent)
    }
  }

  const deadline = Date.now() + budgetMs
  await Promise.all(
    Array.from({ length: inFlightMax }, async () => {
      while (Date.now() < deadline) await oneCall()
    }),
  )
  client.close()

  const codes = [...tally.byCode].sort(([a], [b]) => a - b).map(([code, n]) => `${statusName(code)} ${n}`)
  console.log(`fuzz: ${tally.calls} calls; statuses (calls and stream results): ${codes.join(', ')}`)
  for (const finding of tally.findings.slice(0, 20)) console.log(`fuzz finding: ${JSON.stringify(finding)}`)
  expect(tally.findings.map(({ method, code, details }) => `${method}: ${statusName(code)} ${details}`)).toEqual([])

  expect(await checkHealth(env.server.address)).toBe('SERVING')
  const { run_id } = await raw.runs('Enqueue', { run: { queue: 'after-fuzz', job: 'j', payload_json: '{"still":"works"}' } })
  expect((await raw.runs('GetRun', { run_id })).run).toMatchObject({ status: 'RUN_STATUS_QUEUED', payload_json: '{"still": "works"}' })
  expect(await guardedSnapshot()).toBe(before)
}, 60_000)
