import {
  type BulkAction as BulkActionMessage,
  BulkActionKind,
  BulkActionStatus,
  type OperatorServiceClient,
  type RunSelection as RunSelectionMessage,
} from '@stackshift/proto/operator-service'
import { RunStatus as RunStatusMessage } from '@stackshift/proto/run'
import { fromEventMessage, fromRunMessage, fromRunStatusMessage, toRunStatusMessage } from './convert.js'
import { callUnary, withRetries } from './grpc.js'
import type { ReceivedEvent, Run, RunStatus } from './types.js'

/** Which runs a bulk action selects (as `listRuns` filters them); unset fields match every run. */
export interface RunSelection {
  queue?: string
  job?: string
  status?: RunStatus
  /** Runs created at or after this instant. */
  createdAfter?: Date
  /** Runs created before this instant. */
  createdBefore?: Date
  /** Runs whose payload contains this value (JSON containment). */
  payloadMatch?: Record<string, unknown>
}

/** What a bulk action does to each run it selects. */
export type BulkActionKindName = 'cancel' | 'rerun' | 'replay'

/** A bulk action and its progress. */
export interface BulkAction {
  id: string
  namespace: string
  action: BulkActionKindName
  selection: RunSelection
  /** For a replay: the step it replays from. */
  fromStep: string | undefined
  status: 'running' | 'completed'
  /** Runs cancelled, rerun or replayed so far. */
  handled: number
  /** Runs selected but skipped: finished runs for a cancel, runs without the step for a replay. */
  skipped: number
  createdAt: Date
  updatedAt: Date
  finishedAt: Date | undefined
}

/** What `startBulkAction` returns: the action (undefined for a dry run), and how many runs it selects and would skip. */
export interface BulkActionStart {
  action: BulkAction | undefined
  matched: number
  skipped: number
}

/** An event as `listEvents` lists it, with the runs it resumed. */
export interface ListedEvent<TData = unknown> extends ReceivedEvent<TData> {
  deliveries: Array<{ runId: string; stepId: string }>
}

/** A page of events, newest first. */
export interface EventPage {
  events: ListedEvent[]
  /** Pass as `cursor` for the next page; undefined on the last page. */
  nextCursor: string | undefined
}

/** A worker connected to one of the servers. */
export interface ConnectedWorker {
  workerId: string
  queues: string[]
  jobs: string[]
  /** Runs it could take now. */
  freeSlots: number
  sdk: string
  connectedAt: Date
  /** When its server last reported it (every few seconds). */
  lastSeenAt: Date
  /** The server it is connected to. */
  serverId: string
}

/** A queue's runs by state now, and its last hour by minute. */
export interface QueueStats {
  queue: string
  ready: number
  delayed: number
  waiting: number
  running: number
  /** Minutes of the last hour with activity, oldest first. */
  minutes: Array<{ minute: Date; completed: number; failed: number; started: number; meanStartLatencyMs: number }>
}

const kinds: ReadonlyMap<BulkActionKindName, BulkActionKind> = new Map([
  ['cancel', BulkActionKind.BULK_ACTION_KIND_CANCEL],
  ['rerun', BulkActionKind.BULK_ACTION_KIND_RERUN],
  ['replay', BulkActionKind.BULK_ACTION_KIND_REPLAY],
])

function toSelectionMessage(selection: RunSelection): RunSelectionMessage {
  return {
    queue: selection.queue ?? '',
    job: selection.job ?? '',
    status: selection.status === undefined ? RunStatusMessage.RUN_STATUS_UNSPECIFIED : toRunStatusMessage(selection.status),
    createdAfter: selection.createdAfter,
    createdBefore: selection.createdBefore,
    payloadMatchJson: selection.payloadMatch === undefined ? '' : JSON.stringify(selection.payloadMatch),
  }
}

function fromSelectionMessage(message: RunSelectionMessage | undefined): RunSelection {
  if (!message) return {}
  return {
    ...(message.queue ? { queue: message.queue } : {}),
    ...(message.job ? { job: message.job } : {}),
    ...(fromRunStatusMessage(message.status) ? { status: fromRunStatusMessage(message.status) } : {}),
    ...(message.createdAfter ? { createdAfter: message.createdAfter } : {}),
    ...(message.createdBefore ? { createdBefore: message.createdBefore } : {}),
    ...(message.payloadMatchJson ? { payloadMatch: JSON.parse(message.payloadMatchJson) as Record<string, unknown> } : {}),
  }
}

function fromBulkActionMessage(message: BulkActionMessage): BulkAction {
  const action = [...kinds].find(([, kind]) => kind === message.kind)?.[0]
  if (!action) throw new Error(`server sent unknown bulk action kind ${message.kind}; upgrade @stackshift/sdk`)
  return {
    id: message.id,
    namespace: message.namespace,
    action,
    selection: fromSelectionMessage(message.selection),
    fromStep: message.fromStepId || undefined,
    status: message.status === BulkActionStatus.BULK_ACTION_STATUS_COMPLETED ? 'completed' : 'running',
    handled: message.handled,
    skipped: message.skipped,
    createdAt: message.createdAt ?? new Date(0),
    updatedAt: message.updatedAt ?? new Date(0),
    finishedAt: message.finishedAt,
  }
}

/**
 * The OperatorService calls behind `stackshift.rerunRun`, `replayRun`, the
 * bulk actions and the listings. Reads are retried on UNAVAILABLE; reruns,
 * replays and bulk starts are not (each call makes new runs).
 */
export class OperatorCalls {
  constructor(
    private readonly client: OperatorServiceClient,
    private readonly namespace: string,
    private readonly callTimeoutMs: number,
    private readonly retryBudgetMs: number,
  ) {}

  async rerunRun(runId: string, options: { payload?: unknown }): Promise<Run> {
    const payloadJson = 'payload' in options ? JSON.stringify(options.payload) : undefined
    const response = await callUnary(
      this.client.rerunRun.bind(this.client),
      { namespace: this.namespace, runId, payloadJson },
      this.callTimeoutMs,
    )
    return fromRunMessage(response.run!)
  }

  async replayRun(runId: string, options: { fromStep?: string }): Promise<Run> {
    const response = await callUnary(
      this.client.replayRun.bind(this.client),
      { namespace: this.namespace, runId, fromStepId: options.fromStep ?? '' },
      this.callTimeoutMs,
    )
    return fromRunMessage(response.run!)
  }

  async startBulkAction(options: {
    action: BulkActionKindName
    selection: RunSelection
    fromStep?: string
    dryRun?: boolean
  }): Promise<BulkActionStart> {
    const kind = kinds.get(options.action)
    if (kind === undefined) throw new TypeError(`unknown bulk action "${options.action as string}"; actions: cancel, rerun, replay`)
    const request = {
      namespace: this.namespace,
      kind,
      selection: toSelectionMessage(options.selection),
      fromStepId: options.fromStep ?? '',
      dryRun: options.dryRun ?? false,
    }
    const call = () => callUnary(this.client.startBulkAction.bind(this.client), request, this.callTimeoutMs)
    // A dry run changes nothing: it may be sent again.
    const response = await (request.dryRun ? withRetries(call, this.retryBudgetMs) : call())
    return {
      action: response.action ? fromBulkActionMessage(response.action) : undefined,
      matched: response.matched,
      skipped: response.skipped,
    }
  }

  async getBulkAction(id: string): Promise<BulkAction> {
    const response = await this.read(() =>
      callUnary(this.client.getBulkAction.bind(this.client), { namespace: this.namespace, id }, this.callTimeoutMs),
    )
    return fromBulkActionMessage(response.action!)
  }

  async listBulkActions(options: { limit?: number }): Promise<BulkAction[]> {
    const response = await this.read(() =>
      callUnary(
        this.client.listBulkActions.bind(this.client),
        { namespace: this.namespace, limit: options.limit ?? 0 },
        this.callTimeoutMs,
      ),
    )
    return response.actions.map(fromBulkActionMessage)
  }

  async listEvents(options: { name?: string; limit?: number; cursor?: string }): Promise<EventPage> {
    const response = await this.read(() =>
      callUnary(
        this.client.listEvents.bind(this.client),
        { namespace: this.namespace, name: options.name ?? '', limit: options.limit ?? 0, cursor: options.cursor ?? '' },
        this.callTimeoutMs,
      ),
    )
    return {
      events: response.events.map((listed) => ({ ...fromEventMessage(listed.event!), deliveries: listed.deliveries })),
      nextCursor: response.nextCursor || undefined,
    }
  }

  async listWorkers(): Promise<ConnectedWorker[]> {
    const response = await this.read(() =>
      callUnary(this.client.listWorkers.bind(this.client), { namespace: this.namespace }, this.callTimeoutMs),
    )
    return response.workers.map((worker) => ({
      ...worker,
      connectedAt: worker.connectedAt ?? new Date(0),
      lastSeenAt: worker.lastSeenAt ?? new Date(0),
    }))
  }

  async getQueueStats(options: { queue?: string }): Promise<QueueStats[]> {
    const response = await this.read(() =>
      callUnary(this.client.getQueueStats.bind(this.client), { namespace: this.namespace, queue: options.queue ?? '' }, this.callTimeoutMs),
    )
    return response.queues.map((queue) => ({
      ...queue,
      minutes: queue.minutes.map((minute) => ({ ...minute, minute: minute.minute ?? new Date(0) })),
    }))
  }

  private read<T>(call: () => Promise<T>): Promise<T> {
    return withRetries(call, this.retryBudgetMs)
  }
}
