import { randomUUID } from 'node:crypto'
import { status } from '@grpc/grpc-js'
import { CreateApiKeyRequest, ListApiKeysRequest, RevokeApiKeyRequest } from '@stackshift/proto/admin-service'
import {
  type EnqueueResponse,
  CancelRunRequest,
  EnqueueBatchRequest,
  EnqueueRequest,
  EnqueueStreamRequest,
  GetRunRequest,
  ListRunsRequest,
  SendEventRequest,
  WaitForRunRequest,
} from '@stackshift/proto/run-service'
import {
  type AcquireLockResponse,
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
} from '@stackshift/proto/state-service'
import {
  type ClaimTaskResponse,
  ClaimTaskRequest,
  CompleteRunRequest,
  CompleteStepRequest,
  ConnectRequest,
  type ConnectResponse,
  FailRunRequest,
  HeartbeatRequest,
  ReleaseRunRequest,
  RevokeReason,
  SuspendRunRequest,
} from '@stackshift/proto/worker-service'
import {
  BackfillScheduleRequest,
  CreateScheduleRequest,
  DeleteScheduleRequest,
  GetScheduleRequest,
  ListSchedulesRequest,
  PauseScheduleRequest,
  ResumeScheduleRequest,
  TriggerScheduleRequest,
} from '@stackshift/proto/schedule-service'
import type pg from 'pg'
import {
  BulkActionKind,
  GetBulkActionRequest,
  type GetCallerRequest,
  type GetCallerResponse,
  GetQueueStatsRequest,
  ListBulkActionsRequest,
  ListEventsRequest,
  ListWorkersRequest,
  ReplayRunRequest,
  RerunRunRequest,
  StartBulkActionRequest,
} from '@stackshift/proto/operator-service'
import { ConfigureJobRequest, ConfigureQueueRequest, GetJobRequest, GetQueueRequest, ListJobsRequest } from '@stackshift/proto/job-service'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { accessRules } from '../server/src/rpc/access-rules.js'
import { connect, createTestDatabase } from './support/database.js'
import {
  ApiKeyScope,
  type KeyedClients,
  type Outcome,
  bearer,
  callWith,
  connectClients,
  createKey,
  streamWith,
} from './support/keyed-clients.js'
import { waitUntil } from './support/wait-until.js'
import { type TestServer, startTestServer } from './support/server.js'

/*
 * The isolation matrix: keys of namespaces A and B with each scope, and keys
 * that are missing, unknown, expired or revoked, call every RPC of every
 * service against namespace B's data. Each gets the expected status, and
 * afterwards B's runs, steps, attempts, events, State and locks are
 * byte-for-byte what they were.
 */

const adminKey = 'test-admin-key-0123456789abcdefghijklmnop'
type ScopeName = 'enqueue' | 'read' | 'worker' | 'state' | 'operate' | 'admin'
const scopeNames: ScopeName[] = ['enqueue', 'read', 'worker', 'state', 'operate', 'admin']
const scopeEnum: Record<ScopeName, ApiKeyScope> = {
  enqueue: ApiKeyScope.API_KEY_SCOPE_ENQUEUE,
  read: ApiKeyScope.API_KEY_SCOPE_READ,
  worker: ApiKeyScope.API_KEY_SCOPE_WORKER,
  state: ApiKeyScope.API_KEY_SCOPE_STATE,
  operate: ApiKeyScope.API_KEY_SCOPE_OPERATE,
  admin: ApiKeyScope.API_KEY_SCOPE_ADMIN,
}

let server: TestServer
let clients: KeyedClients
let db: pg.Client
const keys: Record<'A' | 'B', Record<ScopeName, { id: string; secret: string }>> = { A: {} as never, B: {} as never }
/** B's data the calls aim at. */
const b = { queuedRunId: '', heldRunId: '', leaseToken: '', lockId: '', keyId: '' }

beforeAll(async () => {
  const url = await createTestDatabase()
  server = await startTestServer(url, { auth: 'required', adminKey })
  clients = connectClients(server.address)
  db = await connect(url)
  for (const namespace of ['A', 'B'] as const) {
    for (const scope of scopeNames) keys[namespace][scope] = await createKey(clients, adminKey, { namespace, scopes: [scopeEnum[scope]] })
  }
  b.keyId = keys.B.read.id
  // B's data: a queued run, a run held by a worker (its lease token is what a hostile key would present), an event, State, a lock.
  const enqueue = async (queue: string) =>
    (
      await callWith<EnqueueRequest, EnqueueResponse>(
        clients.runs.enqueue.bind(clients.runs),
        EnqueueRequest.fromPartial({ namespace: 'B', run: { queue, job: 'j', payloadJson: '{"secret":"b"}' } }),
        keys.B.enqueue.secret,
      )
    ).response!.runId
  b.queuedRunId = await enqueue('idle')
  b.heldRunId = await enqueue('held')
  const claimed = await callWith<ClaimTaskRequest, ClaimTaskResponse>(
    clients.workers.claimTask.bind(clients.workers),
    ClaimTaskRequest.fromPartial({ namespace: 'B', queues: ['held'], jobs: ['j'], maxTasks: 1 }),
    keys.B.worker.secret,
  )
  b.leaseToken = claimed.response!.tasks[0]!.leaseToken
  await callWith(
    clients.workers.completeStep.bind(clients.workers),
    CompleteStepRequest.fromPartial({ runId: b.heldRunId, leaseToken: b.leaseToken, stepId: 'first', resultJson: '1', durationMs: 1 }),
    keys.B.worker.secret,
  )
  await callWith(
    clients.runs.sendEvent.bind(clients.runs),
    SendEventRequest.fromPartial({ namespace: 'B', id: 'evt_b', name: 'b.happened', dataJson: '{}' }),
    keys.B.enqueue.secret,
  )
  await callWith(
    clients.state.set.bind(clients.state),
    SetRequest.fromPartial({ namespace: 'B', key: 'counter', valueJson: '1' }),
    keys.B.state.secret,
  )
  const lock = await callWith<AcquireLockRequest, AcquireLockResponse>(
    clients.state.acquireLock.bind(clients.state),
    AcquireLockRequest.fromPartial({ namespace: 'B', key: 'lock', ttlMs: 600_000 }),
    keys.B.state.secret,
  )
  b.lockId = lock.response!.lock!.lockId
  await callWith(
    clients.schedules.createSchedule.bind(clients.schedules),
    CreateScheduleRequest.fromPartial({ namespace: 'B', schedule: { id: 'b-schedule', cron: '0 0 1 1 *', job: 'j', paused: true } }),
    keys.B.operate.secret,
  )
}, 60_000)

afterAll(async () => {
  clients.close()
  await db.end()
  await server.stop()
})

/** Namespace B's stored data, as text, to compare before and after. */
async function snapshotOfB(): Promise<string> {
  const tables = [
    `SELECT to_jsonb(r) AS row FROM stackshift.runs r WHERE namespace = 'B' ORDER BY id`,
    `SELECT to_jsonb(s) AS row FROM stackshift.steps s JOIN stackshift.runs r ON r.id = s.run_id WHERE r.namespace = 'B' ORDER BY s.run_id, s.step_id`,
    `SELECT to_jsonb(a) AS row FROM stackshift.attempts a JOIN stackshift.runs r ON r.id = a.run_id WHERE r.namespace = 'B' ORDER BY a.run_id`,
    `SELECT to_jsonb(e) AS row FROM stackshift.events e WHERE namespace = 'B' ORDER BY id`,
    `SELECT to_jsonb(s) AS row FROM stackshift.state s WHERE namespace = 'B' ORDER BY key`,
    `SELECT to_jsonb(l) AS row FROM stackshift.locks l WHERE namespace = 'B' ORDER BY key`,
    `SELECT to_jsonb(k) - 'secret_sha256' AS row FROM stackshift.api_keys k WHERE namespace = 'B' ORDER BY id`,
    `SELECT to_jsonb(a) AS row FROM stackshift.bulk_actions a WHERE namespace = 'B' ORDER BY id`,
    `SELECT to_jsonb(s) AS row FROM stackshift.schedules s WHERE namespace = 'B' ORDER BY id`,
    `SELECT to_jsonb(p) AS row FROM stackshift.job_policies p WHERE namespace = 'B' ORDER BY job`,
    `SELECT to_jsonb(p) AS row FROM stackshift.queue_policies p WHERE namespace = 'B' ORDER BY queue`,
  ]
  const parts: string[] = []
  for (const text of tables) parts.push(JSON.stringify((await db.query<{ row: unknown }>(text)).rows.map((r) => r.row)))
  return parts.join('\n')
}

interface Call {
  /** What the call needs. */
  scope: ScopeName
  /** Makes the call against namespace B's data with `key`. */
  run(key: string | undefined): Promise<Outcome<unknown>>
}

const unary = <Request>(
  method: (request: Request, metadata: never, callback: never) => unknown,
  request: () => Request,
): ((key: string | undefined) => Promise<Outcome<unknown>>) => {
  return (key) => callWith(method as never, request(), key)
}

/** Every RPC of every service, aimed at B. Built lazily: B's ids are known only after setup. */
function calls(): Record<string, Call> {
  const { runs, workers, state, admin, operator, schedules, jobs } = clients
  const schedule = { namespace: 'B', scheduleId: 'b-schedule' }
  const lease = () => ({ runId: b.heldRunId, leaseToken: b.leaseToken })
  const run = { queue: 'q', job: 'j', payloadJson: '{}' }
  return {
    'RunService/Enqueue': {
      scope: 'enqueue',
      run: unary(runs.enqueue.bind(runs), () => EnqueueRequest.fromPartial({ namespace: 'B', run })),
    },
    'RunService/EnqueueBatch': {
      scope: 'enqueue',
      run: unary(runs.enqueueBatch.bind(runs), () => EnqueueBatchRequest.fromPartial({ namespace: 'B', runs: [run] })),
    },
    'RunService/EnqueueStream': {
      scope: 'enqueue',
      run: (key) =>
        streamWith(
          (metadata) => runs.enqueueStream(metadata),
          EnqueueStreamRequest.fromPartial({ id: 1, enqueue: { namespace: 'B', run } }),
          key,
        ),
    },
    'RunService/SendEvent': {
      scope: 'enqueue',
      run: unary(runs.sendEvent.bind(runs), () => SendEventRequest.fromPartial({ namespace: 'B', name: 'b.happened', dataJson: '{}' })),
    },
    'RunService/GetRun': {
      scope: 'read',
      run: unary(runs.getRun.bind(runs), () => GetRunRequest.fromPartial({ namespace: 'B', runId: b.heldRunId })),
    },
    'RunService/WaitForRun': {
      scope: 'read',
      run: unary(runs.waitForRun.bind(runs), () => WaitForRunRequest.fromPartial({ namespace: 'B', runId: b.heldRunId })),
    },
    'RunService/ListRuns': { scope: 'read', run: unary(runs.listRuns.bind(runs), () => ListRunsRequest.fromPartial({ namespace: 'B' })) },
    'RunService/CancelRun': {
      scope: 'operate',
      run: unary(runs.cancelRun.bind(runs), () => CancelRunRequest.fromPartial({ namespace: 'B', runId: b.queuedRunId })),
    },
    'StateService/Get': {
      scope: 'read',
      run: unary(state.get.bind(state), () => GetRequest.fromPartial({ namespace: 'B', key: 'counter' })),
    },
    'StateService/List': { scope: 'read', run: unary(state.list.bind(state), () => ListRequest.fromPartial({ namespace: 'B' })) },
    'StateService/Set': {
      scope: 'state',
      run: unary(state.set.bind(state), () => SetRequest.fromPartial({ namespace: 'B', key: 'counter', valueJson: '99' })),
    },
    'StateService/Delete': {
      scope: 'state',
      run: unary(state.delete.bind(state), () => DeleteRequest.fromPartial({ namespace: 'B', key: 'counter' })),
    },
    'StateService/Increment': {
      scope: 'state',
      run: unary(state.increment.bind(state), () => IncrementRequest.fromPartial({ namespace: 'B', key: 'counter', delta: 1 })),
    },
    'StateService/SetIfAbsent': {
      scope: 'state',
      run: unary(state.setIfAbsent.bind(state), () => SetIfAbsentRequest.fromPartial({ namespace: 'B', key: 'new', valueJson: '1' })),
    },
    'StateService/CompareAndSet': {
      scope: 'state',
      run: unary(state.compareAndSet.bind(state), () =>
        CompareAndSetRequest.fromPartial({ namespace: 'B', key: 'counter', expectedVersion: 1, valueJson: '7' }),
      ),
    },
    'StateService/AcquireLock': {
      scope: 'state',
      run: unary(state.acquireLock.bind(state), () => AcquireLockRequest.fromPartial({ namespace: 'B', key: 'other-lock', ttlMs: 1000 })),
    },
    'StateService/ExtendLock': {
      scope: 'state',
      run: unary(state.extendLock.bind(state), () =>
        ExtendLockRequest.fromPartial({ namespace: 'B', key: 'lock', lockId: b.lockId, ttlMs: 1000 }),
      ),
    },
    'StateService/ReleaseLock': {
      scope: 'state',
      run: unary(state.releaseLock.bind(state), () => ReleaseLockRequest.fromPartial({ namespace: 'B', key: 'lock', lockId: b.lockId })),
    },
    'StateService/Increment inside a run': {
      scope: 'worker',
      run: unary(state.increment.bind(state), () =>
        IncrementRequest.fromPartial({ namespace: 'B', key: 'counter', delta: 1, run: { ...lease(), opId: 'op' } }),
      ),
    },
    'WorkerService/Connect': {
      scope: 'worker',
      run: (key) =>
        streamWith(
          (metadata) => workers.connect(metadata),
          ConnectRequest.fromPartial({ hello: { namespace: 'B', queues: ['idle'], jobs: ['j'], slots: 1 } }),
          key,
        ),
    },
    'WorkerService/ClaimTask': {
      scope: 'worker',
      run: unary(workers.claimTask.bind(workers), () =>
        ClaimTaskRequest.fromPartial({ namespace: 'B', queues: ['idle'], jobs: ['j'], maxTasks: 1 }),
      ),
    },
    'WorkerService/Heartbeat': {
      scope: 'worker',
      run: unary(workers.heartbeat.bind(workers), () => HeartbeatRequest.fromPartial({ leases: [lease()] })),
    },
    'WorkerService/CompleteStep': {
      scope: 'worker',
      run: unary(workers.completeStep.bind(workers), () =>
        CompleteStepRequest.fromPartial({ ...lease(), stepId: 'forged', resultJson: '2' }),
      ),
    },
    'WorkerService/CompleteRun': {
      scope: 'worker',
      run: unary(workers.completeRun.bind(workers), () => CompleteRunRequest.fromPartial({ ...lease(), resultJson: '"forged"' })),
    },
    'WorkerService/FailRun': {
      scope: 'worker',
      run: unary(workers.failRun.bind(workers), () =>
        FailRunRequest.fromPartial({ ...lease(), error: { name: 'Forged', message: 'forged' } }),
      ),
    },
    'WorkerService/ReleaseRun': {
      scope: 'worker',
      run: unary(workers.releaseRun.bind(workers), () => ReleaseRunRequest.fromPartial(lease())),
    },
    'WorkerService/SuspendRun': {
      scope: 'worker',
      run: unary(workers.suspendRun.bind(workers), () =>
        SuspendRunRequest.fromPartial({
          ...lease(),
          stepId: 'nap',
          wait: { $case: 'sleep', sleep: { wakeAt: new Date(Date.now() + 60_000) } },
        }),
      ),
    },
    'AdminService/CreateApiKey': {
      scope: 'admin',
      run: unary(admin.createApiKey.bind(admin), () =>
        CreateApiKeyRequest.fromPartial({ namespace: 'B', scopes: [ApiKeyScope.API_KEY_SCOPE_READ], name: 'forged' }),
      ),
    },
    'AdminService/ListApiKeys': {
      scope: 'admin',
      run: unary(admin.listApiKeys.bind(admin), () => ListApiKeysRequest.fromPartial({ namespace: 'B' })),
    },
    'AdminService/RevokeApiKey': {
      scope: 'admin',
      run: unary(admin.revokeApiKey.bind(admin), () => RevokeApiKeyRequest.fromPartial({ id: b.keyId })),
    },
    'OperatorService/RerunRun': {
      scope: 'operate',
      run: unary(operator.rerunRun.bind(operator), () => RerunRunRequest.fromPartial({ namespace: 'B', runId: b.queuedRunId })),
    },
    'OperatorService/ReplayRun': {
      scope: 'operate',
      run: unary(operator.replayRun.bind(operator), () =>
        ReplayRunRequest.fromPartial({ namespace: 'B', runId: b.heldRunId, fromStepId: 'first' }),
      ),
    },
    'OperatorService/StartBulkAction': {
      scope: 'operate',
      run: unary(operator.startBulkAction.bind(operator), () =>
        StartBulkActionRequest.fromPartial({ namespace: 'B', kind: BulkActionKind.BULK_ACTION_KIND_CANCEL, selection: {} }),
      ),
    },
    'OperatorService/StartBulkAction as a dry run': {
      scope: 'read',
      run: unary(operator.startBulkAction.bind(operator), () =>
        StartBulkActionRequest.fromPartial({ namespace: 'B', kind: BulkActionKind.BULK_ACTION_KIND_CANCEL, selection: {}, dryRun: true }),
      ),
    },
    'OperatorService/GetBulkAction': {
      scope: 'read',
      run: unary(operator.getBulkAction.bind(operator), () =>
        GetBulkActionRequest.fromPartial({ namespace: 'B', id: '0190b6b2-0000-4000-8000-000000000001' }),
      ),
    },
    'OperatorService/ListBulkActions': {
      scope: 'read',
      run: unary(operator.listBulkActions.bind(operator), () => ListBulkActionsRequest.fromPartial({ namespace: 'B' })),
    },
    'OperatorService/ListEvents': {
      scope: 'read',
      run: unary(operator.listEvents.bind(operator), () => ListEventsRequest.fromPartial({ namespace: 'B' })),
    },
    'OperatorService/ListWorkers': {
      scope: 'read',
      run: unary(operator.listWorkers.bind(operator), () => ListWorkersRequest.fromPartial({ namespace: 'B' })),
    },
    'OperatorService/GetQueueStats': {
      scope: 'read',
      run: unary(operator.getQueueStats.bind(operator), () => GetQueueStatsRequest.fromPartial({ namespace: 'B' })),
    },
    'ScheduleService/CreateSchedule': {
      scope: 'operate',
      run: unary(schedules.createSchedule.bind(schedules), () =>
        CreateScheduleRequest.fromPartial({ namespace: 'B', schedule: { id: 'b-schedule', cron: '* * * * * *', job: 'forged' } }),
      ),
    },
    'ScheduleService/GetSchedule': {
      scope: 'read',
      run: unary(schedules.getSchedule.bind(schedules), () => GetScheduleRequest.fromPartial(schedule)),
    },
    'ScheduleService/ListSchedules': {
      scope: 'read',
      run: unary(schedules.listSchedules.bind(schedules), () => ListSchedulesRequest.fromPartial({ namespace: 'B' })),
    },
    'ScheduleService/DeleteSchedule': {
      scope: 'operate',
      run: unary(schedules.deleteSchedule.bind(schedules), () => DeleteScheduleRequest.fromPartial(schedule)),
    },
    'ScheduleService/PauseSchedule': {
      scope: 'operate',
      run: unary(schedules.pauseSchedule.bind(schedules), () => PauseScheduleRequest.fromPartial(schedule)),
    },
    'ScheduleService/ResumeSchedule': {
      scope: 'operate',
      run: unary(schedules.resumeSchedule.bind(schedules), () => ResumeScheduleRequest.fromPartial(schedule)),
    },
    'ScheduleService/TriggerSchedule': {
      scope: 'operate',
      run: unary(schedules.triggerSchedule.bind(schedules), () => TriggerScheduleRequest.fromPartial(schedule)),
    },
    'ScheduleService/BackfillSchedule': {
      scope: 'operate',
      run: unary(schedules.backfillSchedule.bind(schedules), () =>
        BackfillScheduleRequest.fromPartial({
          ...schedule,
          startAt: new Date('2026-01-01T00:00:00Z'),
          endAt: new Date('2027-01-01T00:00:00Z'),
        }),
      ),
    },
    'JobService/ConfigureJob': {
      scope: 'operate',
      run: unary(jobs.configureJob.bind(jobs), () =>
        ConfigureJobRequest.fromPartial({ namespace: 'B', job: 'j', policies: { concurrency: { limit: 3, key: 'customerId' } } }),
      ),
    },
    'JobService/GetJob': {
      scope: 'read',
      run: unary(jobs.getJob.bind(jobs), () => GetJobRequest.fromPartial({ namespace: 'B', job: 'j' })),
    },
    'JobService/ListJobs': {
      scope: 'read',
      run: unary(jobs.listJobs.bind(jobs), () => ListJobsRequest.fromPartial({ namespace: 'B' })),
    },
    'JobService/ConfigureQueue': {
      scope: 'operate',
      run: unary(jobs.configureQueue.bind(jobs), () =>
        ConfigureQueueRequest.fromPartial({ namespace: 'B', queue: 'q', policies: { concurrency: 4 } }),
      ),
    },
    'JobService/GetQueue': {
      scope: 'read',
      run: unary(jobs.getQueue.bind(jobs), () => GetQueueRequest.fromPartial({ namespace: 'B', queue: 'q' })),
    },
  }
}

/** A key that may never work: made expired by back-dating, or revoked. */
async function unusableKeys(): Promise<Record<string, string>> {
  const expired = await createKey(clients, adminKey, { namespace: 'B', scopes: scopeNames.map((scope) => scopeEnum[scope]) })
  await db.query(`UPDATE stackshift.api_keys SET expires_at = now() - interval '1 second' WHERE id = $1`, [expired.id])
  const revoked = await createKey(clients, adminKey, { namespace: 'B', scopes: scopeNames.map((scope) => scopeEnum[scope]) })
  await callWith(clients.admin.revokeApiKey.bind(clients.admin), RevokeApiKeyRequest.fromPartial({ id: revoked.id }), adminKey)
  const known = keys.B.read
  return {
    'no key': '',
    'a malformed key': 'not-a-key',
    'an unknown key': `ssk_0123456789abcdef_${'x'.repeat(32)}`,
    'a known id with the wrong secret': `ssk_${known.id}_${'y'.repeat(32)}`,
    'an expired key': expired.secret,
    'a revoked key': revoked.secret,
  }
}

describe('every RPC of every service, called on namespace B', () => {
  it('covers every method the access rules name (GetCaller, open to every valid key, below)', () => {
    const named = new Set(Object.keys(calls()).map((name) => `/stackshift.jobs.v1.${name.split(' ')[0]!}`))
    expect([...accessRules.keys()].filter((path) => !named.has(path))).toEqual(['/stackshift.jobs.v1.OperatorService/GetCaller'])
  })

  it('is refused for every key but B’s with the scope it needs, and B’s data is unchanged', async () => {
    const unusable = await unusableKeys()
    const before = await snapshotOfB()
    const outcomes: string[] = []
    const expectCode = (label: string, outcome: Outcome<unknown>, expected: status) => {
      outcomes.push(`${label}: ${status[outcome.code]}`)
      expect(`${label}: ${status[outcome.code]} ${outcome.message}`).toMatch(new RegExp(`^${escape(label)}: ${status[expected]} `))
    }
    for (const [name, call] of Object.entries(calls())) {
      for (const [label, key] of Object.entries(unusable)) {
        expectCode(`${name} with ${label}`, await call.run(key === '' ? undefined : key), status.UNAUTHENTICATED)
      }
      for (const scope of scopeNames) {
        // A's keys, every scope: B's data is out of their namespace.
        const fromA = await call.run(keys.A[scope].secret)
        if (name === 'WorkerService/Heartbeat' && scope === 'worker') {
          // A heartbeat names its leases; one not the writer's is reported lost, not extended.
          expectCode(`${name} with A's ${scope} key`, fromA, status.OK)
          expect((fromA.response as { revoked: Array<{ reason: RevokeReason }> }).revoked).toEqual([
            { runId: b.heldRunId, reason: RevokeReason.REVOKE_REASON_LEASE_LOST },
          ])
        } else expectCode(`${name} with A's ${scope} key`, fromA, status.PERMISSION_DENIED)
        // B's keys without the scope the call needs.
        if (scope !== call.scope)
          expectCode(`${name} with B's ${scope} key`, await call.run(keys.B[scope].secret), status.PERMISSION_DENIED)
      }
    }
    expect(await snapshotOfB()).toBe(before)
    expect(outcomes.length).toBeGreaterThan(300)
  }, 120_000)

  it('a refusal names the scope the key lacks, or the namespace it is for', async () => {
    const getRun = calls()['RunService/GetRun']!
    expect((await getRun.run(keys.B.enqueue.secret)).message).toMatch(/lacks the "read" scope/)
    expect((await getRun.run(keys.A.read.secret)).message).toMatch(/namespace "A", not "B"/)
  })

  it('B’s keys with the scope a read needs are served', async () => {
    const all = calls()
    for (const name of ['RunService/GetRun', 'RunService/ListRuns', 'RunService/WaitForRun', 'StateService/Get', 'StateService/List']) {
      const call = all[name]!
      const outcome = await call.run(keys.B[call.scope].secret)
      expect(`${name}: ${status[outcome.code]}`).toBe(`${name}: OK`)
    }
    const run = await all['RunService/GetRun']!.run(keys.B.read.secret)
    expect(JSON.parse((run.response as { run: { payloadJson: string } }).run.payloadJson)).toEqual({ secret: 'b' })
  })

  it('a key of every namespace with every scope is served everywhere (the admin key)', async () => {
    const outcome = await calls()['RunService/GetRun']!.run(adminKey)
    expect(outcome.code).toBe(status.OK)
  })
})

it('GetCaller describes the key of any scope, and refuses a key that does not work', async () => {
  const { operator } = clients
  for (const scope of scopeNames) {
    const outcome = await callWith<GetCallerRequest, GetCallerResponse>(operator.getCaller.bind(operator), {}, keys.A[scope].secret)
    expect(outcome.response).toEqual({ keyId: keys.A[scope].id, namespace: 'A', scopes: [scopeEnum[scope]], isAuthRequired: true })
  }
  const refused = await callWith(operator.getCaller.bind(operator), {}, `ssk_0123456789abcdef_${'x'.repeat(32)}`)
  expect(refused.code).toBe(status.UNAUTHENTICATED)
})

it('a cancellation reaches the worker streams of the run’s namespace only', async () => {
  const open = (namespace: 'A' | 'B') => {
    const stream = clients.workers.connect(bearer(keys[namespace].worker.secret))
    const messages: ConnectResponse[] = []
    stream.on('data', (message: ConnectResponse) => messages.push(message))
    stream.on('error', () => {})
    stream.write(ConnectRequest.fromPartial({ hello: { namespace, queues: ['cancel-me'], jobs: ['j'], slots: 1 } }))
    return { stream, messages }
  }
  const inA = open('A')
  const inB = open('B')
  const enqueued = await callWith<EnqueueRequest, EnqueueResponse>(
    clients.runs.enqueue.bind(clients.runs),
    EnqueueRequest.fromPartial({ namespace: 'B', run: { queue: 'cancel-me', job: 'j', payloadJson: '{}' } }),
    keys.B.enqueue.secret,
  )
  const runId = enqueued.response!.runId
  await waitUntil(() => inB.messages.some((message) => message.tasks.some((task) => task.runId === runId)), Boolean, 10_000)
  const cancelled = await callWith(
    clients.runs.cancelRun.bind(clients.runs),
    CancelRunRequest.fromPartial({ namespace: 'B', runId }),
    keys.B.operate.secret,
  )
  expect(cancelled.code).toBe(status.OK)
  await waitUntil(() => inB.messages.some((message) => message.revoked.some((revoked) => revoked.runId === runId)), Boolean, 10_000)
  // Both streams are on this server, whose notice would reach them in the same turn. A
  // write on A's stream made now is answered after anything the server sent it then.
  inA.stream.write(
    ConnectRequest.fromPartial({
      operations: [{ id: 1, operation: { $case: 'releaseRun', releaseRun: { runId: randomUUID(), leaseToken: randomUUID() } } }],
    }),
  )
  await waitUntil(() => inA.messages.some((message) => message.results.length > 0), Boolean, 10_000)
  expect(inA.messages.flatMap((message) => message.revoked)).toEqual([])
  expect(inA.messages.flatMap((message) => message.tasks)).toEqual([])
  inA.stream.cancel()
  inB.stream.cancel()
})

it('a worker key of A, holding B’s lease, cannot write State as a step of B’s run', async () => {
  const outcome = await callWith(
    clients.state.increment.bind(clients.state),
    IncrementRequest.fromPartial({
      namespace: 'A',
      key: 'counter',
      delta: 1,
      run: { runId: b.heldRunId, leaseToken: b.leaseToken, opId: 'state.increment:counter' },
    }),
    keys.A.worker.secret,
  )
  expect(outcome.code).toBe(status.PERMISSION_DENIED)
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM stackshift.steps WHERE run_id = $1 AND kind = 'state'`, [
    b.heldRunId,
  ])
  expect(rows[0]!.n).toBe(0)
  const { rows: stateRows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM stackshift.state WHERE namespace = 'A'`)
  expect(stateRows[0]!.n).toBe(0)
})

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
