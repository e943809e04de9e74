import type { ChannelCredentials, ChannelOptions } from '@grpc/grpc-js'
import { AdminClient } from './admin.js'
import {
  type BulkAction,
  type BulkActionKindName,
  type BulkActionStart,
  type ConnectedWorker,
  type EventPage,
  OperatorCalls,
  type QueueStats,
  type RunSelection,
} from './operator.js'
import { fromEventMessage, fromRunMessage, toRunStatusMessage } from './convert.js'
import { type TlsOptions, apiKeyInterceptor, channelCredentialsFor, resolveApiKey } from './credentials.js'
import { EnqueueStreamClient } from './enqueue-stream.js'
import { InvalidArgumentError, WaitForRunTimeoutError } from './errors.js'
import { type GrpcClients, callUnary, createGrpcClients, withRetries, withRetriesUnderLease } from './grpc.js'
import type { JobDefinition, JobHandler } from './job.js'
import { type JobInfo, JobCalls, type JobPolicies, type QueuePolicies } from './flow.js'
import { type Logger, defaultLogger } from './logger.js'
import { type EnqueueOptions, Queue } from './queue.js'
import { Schedules } from './schedules.js'
import { StateClient, type StateStore } from './state.js'
import { encodeJson } from './json.js'
import type { EnqueuedRun, ListRunsOptions, ReceivedEvent, Run, RunPage, SentEvent } from './types.js'
import { Worker, type WorkerOptions } from './worker.js'

/** Options of `new StackShift()`. */
export interface StackShiftOptions {
  /** Server address, `host:port`. */
  address: string
  /** Namespace (tenant or environment) for everything this client does. Default "default". */
  namespace?: string
  /**
   * API key, sent with every call and stream as `authorization: Bearer <apiKey>`
   * (with or without TLS). Default: the STACKSHIFT_API_KEY environment variable
   * when set; `''` sends none even then.
   */
  apiKey?: string
  /**
   * TLS. `true`: trust Node's default certificate authorities (its bundled
   * list, plus NODE_EXTRA_CA_CERTS). `{ ca }`: trust these instead, for a
   * server certificate from a private CA; `{ cert, key }` (with or without
   * `ca`): present this client certificate, for a server that requires one
   * (mTLS). Default: plain text. Cannot be combined with `credentials`.
   */
  tls?: boolean | TlsOptions
  /**
   * grpc-js channel credentials, for what `tls` does not cover (a custom
   * `checkServerIdentity`, say). Default: plain text, or what `tls` says;
   * giving both is a TypeError. `apiKey` is sent either way.
   */
  credentials?: ChannelCredentials
  /** Extra gRPC channel options. */
  channelOptions?: ChannelOptions
  /** Deadline of each call, in ms. Default 30,000. */
  callTimeoutMs?: number
  /** Where background events (reconnects, lost leases) are reported. Default: warnings to stderr. */
  logger?: Logger
}

// How long calls that are safe to repeat keep retrying while the server is unavailable.
const retryBudgetMs = 10_000

/**
 * The StackShift client: enqueue runs, read them, register jobs and start
 * workers. One instance holds one gRPC channel; share it.
 */
export class StackShift {
  readonly namespace: string
  /** The State Store of the namespace. */
  readonly state: StateStore
  /** Managing API keys (needs a key with the `admin` scope). */
  readonly admin: AdminClient
  /** Schedules: runs enqueued on a cron expression (needs `operate` to change them, `read` to read them). */
  readonly schedules: Schedules
  private readonly operator: OperatorCalls
  private readonly jobCalls: JobCalls
  private readonly clients: GrpcClients
  private readonly enqueueStream: EnqueueStreamClient
  private readonly jobs = new Map<string, JobDefinition>()
  private readonly callTimeoutMs: number
  private readonly logger: Logger

  constructor(options: StackShiftOptions) {
    // Checked as JavaScript callers may call it: with no options at all.
    if (typeof (options as StackShiftOptions | undefined)?.address !== 'string' || options.address === '')
      throw new TypeError('StackShift options.address must be "host:port"')
    this.namespace = options.namespace ?? 'default'
    this.callTimeoutMs = options.callTimeoutMs ?? 30_000
    this.logger = options.logger ?? defaultLogger
    const apiKey = resolveApiKey(options.apiKey, process.env)
    this.clients = createGrpcClients(options.address, {
      credentials: channelCredentialsFor(options),
      channelOptions: options.channelOptions,
      interceptors: apiKey === undefined ? [] : [apiKeyInterceptor(apiKey)],
    })
    this.enqueueStream = new EnqueueStreamClient(this.clients.runs)
    this.state = new StateClient(this.clients.state, this.namespace, this.callTimeoutMs)
    this.admin = new AdminClient(this.clients.admin, this.namespace, this.callTimeoutMs)
    this.operator = new OperatorCalls(this.clients.operator, this.namespace, this.callTimeoutMs, retryBudgetMs)
    this.schedules = new Schedules(this.clients.schedules, this.namespace, this.callTimeoutMs, retryBudgetMs)
    this.jobCalls = new JobCalls(this.clients.jobs, this.namespace, this.callTimeoutMs, retryBudgetMs)
  }

  /** A queue to enqueue runs on. */
  queue(name: string): Queue {
    if (typeof name !== 'string' || name === '') throw new TypeError('queue name must be a non-empty string')
    return new Queue(name, {
      configure: (policies: QueuePolicies) => this.jobCalls.configureQueue(name, policies),
      getPolicies: () => this.jobCalls.getQueue(name),
      enqueue: (run, options: EnqueueOptions) => {
        const call = () => this.enqueueStream.enqueue({ namespace: this.namespace, run }, this.callTimeoutMs)
        // Without a key a repeated enqueue could store the run twice; with one it cannot.
        const response = options.idempotencyKey ? withRetries(call, retryBudgetMs) : call()
        return response.then((r): EnqueuedRun => ({ id: r.runId, deduplicated: r.deduplicated }))
      },
      enqueueBatch: async (runs) => {
        const response = await callUnary(
          this.clients.runs.enqueueBatch.bind(this.clients.runs),
          { namespace: this.namespace, runs },
          this.callTimeoutMs,
        )
        return response.results.map((r) => ({ id: r.runId, deduplicated: r.deduplicated }))
      },
    })
  }

  /**
   * Registers the handler of a job. Workers started afterwards execute runs
   * of it. Registering a name twice replaces the handler. With `policies`
   * (concurrency, rate limit, debounce, fairness), workers declare them to
   * the server when they connect, which enforces them for every worker and
   * enqueuer (see `configureJob`); bad policies make the worker's start fail
   * with InvalidArgumentError naming the field.
   */
  job<TPayload = unknown, TResult = unknown>(name: string, handler: JobHandler<TPayload, TResult>): JobDefinition<TPayload, TResult>
  job<TPayload = unknown, TResult = unknown>(
    name: string,
    policies: JobPolicies,
    handler: JobHandler<TPayload, TResult>,
  ): JobDefinition<TPayload, TResult>
  job<TPayload = unknown, TResult = unknown>(
    name: string,
    policiesOrHandler: JobPolicies | JobHandler<TPayload, TResult>,
    maybeHandler?: JobHandler<TPayload, TResult>,
  ): JobDefinition<TPayload, TResult> {
    const handler = typeof policiesOrHandler === 'function' ? policiesOrHandler : maybeHandler
    const policies = typeof policiesOrHandler === 'function' ? undefined : policiesOrHandler
    if (typeof name !== 'string' || name === '') throw new TypeError('job name must be a non-empty string')
    if (typeof handler !== 'function') throw new TypeError(`job "${name}": handler must be a function`)
    // Checked as JavaScript callers may call it: with anything.
    if (policies !== undefined && (typeof policies !== 'object' || (policies as JobPolicies | null) === null))
      throw new TypeError(`job "${name}": policies must be an object`)
    const definition: JobDefinition<TPayload, TResult> = { name, handler, policies }
    this.jobs.set(name, definition as unknown as JobDefinition)
    return definition
  }

  /**
   * Sets a job's flow-control policies on the server, for every worker and
   * enqueuer of the namespace, at once and without a restart: what a worker
   * declares with `job(name, policies, handler)`, for services that only
   * enqueue, or to change a limit at run time. Sets all of them: a policy
   * left out is removed (`{}` removes every one). Equal policies change
   * nothing; otherwise the version goes up and the latest change wins. Needs
   * a key with the `operate` scope.
   */
  configureJob(name: string, policies: JobPolicies): Promise<JobInfo> {
    return this.jobCalls.configureJob(name, policies)
  }

  /** A job's stored policies (version 0 when never configured). */
  getJob(name: string): Promise<JobInfo> {
    return this.jobCalls.getJob(name)
  }

  /** The jobs of the namespace that have policies. */
  listJobs(): Promise<JobInfo[]> {
    return this.jobCalls.listJobs()
  }

  /** A worker for the registered jobs. Call `start()` on it. */
  worker(options: WorkerOptions): Worker {
    return new Worker(
      {
        client: this.clients.workers,
        namespace: this.namespace,
        jobs: this.jobs,
        logger: this.logger,
        // Inside a job the id is always set (step.sendEvent derives one), so retries are safe; like
        // the run's other writes, they go on while the attempt lasts, so an outage costs no attempt.
        sendEvent: async ({ id, name, dataJson }, throwIfAborted) =>
          (await withRetriesUnderLease(() => this.callSendEvent(id, name, dataJson), throwIfAborted)).event!.id,
        runState: (scope) => new StateClient(this.clients.state, this.namespace, this.callTimeoutMs, scope),
      },
      options,
    )
  }

  /** The run as it is now, with its steps and attempt history. */
  async getRun<TResult = unknown, TPayload = unknown>(runId: string): Promise<Run<TResult, TPayload>> {
    const response = await withRetries(
      () => callUnary(this.clients.runs.getRun.bind(this.clients.runs), { namespace: this.namespace, runId }, this.callTimeoutMs),
      retryBudgetMs,
    )
    return fromRunMessage(response.run!)
  }

  /**
   * Waits until the run has finished (completed, failed or cancelled) and
   * returns it. Throws WaitForRunTimeoutError if it has not within `timeoutMs`
   * (default 30,000).
   */
  async waitForRun<TResult = unknown, TPayload = unknown>(
    runId: string,
    options: { timeoutMs?: number } = {},
  ): Promise<Run<TResult, TPayload>> {
    const timeoutMs = options.timeoutMs ?? 30_000
    const deadline = Date.now() + timeoutMs
    // The server holds one call for at most 5 minutes; longer waits take several.
    for (;;) {
      const remainingMs = Math.max(0, deadline - Date.now())
      const waitMs = Math.min(remainingMs, 300_000)
      const response = await withRetries(
        () =>
          callUnary(
            this.clients.runs.waitForRun.bind(this.clients.runs),
            { namespace: this.namespace, runId, timeoutMs: waitMs },
            waitMs + this.callTimeoutMs,
          ),
        retryBudgetMs,
      )
      const run = fromRunMessage<TResult, TPayload>(response.run!)
      if (response.finished) return run
      if (Date.now() >= deadline)
        throw new WaitForRunTimeoutError(`run ${runId} did not finish within ${timeoutMs} ms (it is ${run.status})`)
    }
  }

  /**
   * Sends an event: it resumes every run waiting for `name` whose match its
   * data contains. With `options.id`, sending the same id again stores and
   * delivers nothing new (and the call is retried while the server is
   * unavailable).
   */
  async sendEvent<TData = unknown>(
    name: string,
    data?: TData,
    options: { id?: string } = {},
  ): Promise<SentEvent & { event: ReceivedEvent<TData> }> {
    if (typeof name !== 'string' || name === '') throw new InvalidArgumentError('event name must be a non-empty string')
    const dataJson = encodeJson(data ?? null, 'event data') ?? 'null'
    const call = () => this.callSendEvent(options.id ?? '', name, dataJson)
    const response = options.id ? await withRetries(call, retryBudgetMs) : await call()
    const event = fromEventMessage<TData>(response.event!)
    return { id: event.id, deduplicated: response.deduplicated, resumedRuns: response.resumedRuns, event }
  }

  /**
   * Cancels a run that has not finished, and returns it (now cancelled). A
   * queued or waiting run ends at once; a running run's handler sees its
   * `signal` abort, and nothing it writes afterwards is stored. Cancelling a
   * finished run throws FailedPreconditionError.
   */
  async cancelRun<TResult = unknown, TPayload = unknown>(
    runId: string,
    options: { reason?: string } = {},
  ): Promise<Run<TResult, TPayload>> {
    const response = await withRetries(
      () =>
        callUnary(
          this.clients.runs.cancelRun.bind(this.clients.runs),
          { namespace: this.namespace, runId, reason: options.reason ?? '' },
          this.callTimeoutMs,
        ),
      retryBudgetMs,
    )
    return fromRunMessage(response.run!)
  }

  /** A page of runs, newest first, filtered. Pass `nextCursor` back as `cursor` for the next page. */
  async listRuns(options: ListRunsOptions = {}): Promise<RunPage> {
    const response = await withRetries(
      () =>
        callUnary(
          this.clients.runs.listRuns.bind(this.clients.runs),
          {
            namespace: this.namespace,
            queue: options.queue ?? '',
            job: options.job ?? '',
            status: options.status === undefined ? 0 : toRunStatusMessage(options.status),
            createdAfter: options.createdAfter,
            createdBefore: options.createdBefore,
            limit: options.limit ?? 0,
            cursor: options.cursor ?? '',
            runId: options.runId ?? '',
            idempotencyKey: options.idempotencyKey ?? '',
            payloadMatchJson: options.payloadMatch === undefined ? '' : JSON.stringify(options.payloadMatch),
            sourceRunId: options.sourceRunId ?? '',
            scheduleId: options.scheduleId ?? '',
            parentRunId: options.parentRunId ?? '',
          },
          this.callTimeoutMs,
        ),
      retryBudgetMs,
    )
    return { runs: response.runs.map((run) => fromRunMessage(run)), nextCursor: response.nextCursor || undefined }
  }

  private callSendEvent(id: string, name: string, dataJson: string) {
    return callUnary(
      this.clients.runs.sendEvent.bind(this.clients.runs),
      { namespace: this.namespace, id, name, dataJson },
      this.callTimeoutMs,
    )
  }

  /**
   * Runs the job of run `runId` again, as a new run on the same queue, with
   * the same payload or `payload`. The source run is untouched; the new one
   * says where it came from (`rerunOf`). Needs the `operate` scope.
   */
  rerunRun(runId: string, options: { payload?: unknown } = {}): Promise<Run> {
    return this.operator.rerunRun(runId, options)
  }

  /**
   * Forks run `runId`: a new run whose memo keeps the source's steps that
   * completed before `fromStep` (in the order they were recorded), so it
   * executes from that step on; without `fromStep`, from the start. The new
   * run names its source and the step (`forkedFrom`). Needs `operate`.
   */
  replayRun(runId: string, options: { fromStep?: string } = {}): Promise<Run> {
    return this.operator.replayRun(runId, options)
  }

  /**
   * Cancels, reruns or replays every run a selection holds, on the server,
   * in batches (it carries on after a server restart). With `dryRun` it only
   * counts them. Poll it with `getBulkAction`. Needs `operate` (a dry run, `read`).
   */
  startBulkAction(options: {
    action: BulkActionKindName
    selection: RunSelection
    fromStep?: string
    dryRun?: boolean
  }): Promise<BulkActionStart> {
    return this.operator.startBulkAction(options)
  }

  /** A bulk action and its progress. */
  getBulkAction(id: string): Promise<BulkAction> {
    return this.operator.getBulkAction(id)
  }

  /** The namespace's bulk actions, newest first (default 50). */
  listBulkActions(options: { limit?: number } = {}): Promise<BulkAction[]> {
    return this.operator.listBulkActions(options)
  }

  /** A page of events, newest first, each with the runs it resumed. */
  listEvents(options: { name?: string; limit?: number; cursor?: string } = {}): Promise<EventPage> {
    return this.operator.listEvents(options)
  }

  /** The workers connected to any server of this namespace. */
  listWorkers(): Promise<ConnectedWorker[]> {
    return this.operator.listWorkers()
  }

  /** Queues' runs by state now, and their last hour by minute. */
  getQueueStats(options: { queue?: string } = {}): Promise<QueueStats[]> {
    return this.operator.getQueueStats(options)
  }

  /** Closes the channel. Stop workers first. */
  close(): void {
    this.enqueueStream.close()
    this.clients.close()
  }
}
