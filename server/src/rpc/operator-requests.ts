import {
  BulkActionKind,
  type GetBulkActionRequest,
  type GetQueueStatsRequest,
  type ListBulkActionsRequest,
  type ListEventsRequest,
  type ListWorkersRequest,
  type ReplayRunRequest,
  type RerunRunRequest,
  RunSelection as RunSelectionFactory,
  type RunSelection as RunSelectionMessage,
  type StartBulkActionRequest,
} from '@stackshift/proto/operator-service'
import { z } from 'zod'
import type { BulkActionKind as DomainBulkActionKind, RunSelection } from '../core/bulk-action.js'
import { InvalidArgumentError } from '../core/errors.js'
import { checkJsonObject, checkJsonValue } from '../core/json-text.js'
import { limits } from '../core/limits.js'
import type { EventCursor } from '../db/queries/events.js'
import type { NewBulkAction } from '../operations/bulk-actions.js'
import { runStatusFromProto } from './convert.js'
import {
  type RequestLimits as Limits,
  instantSchema,
  namespaceSchema,
  parse,
  parseNamespace,
  textSchema,
  uuidSchema,
} from './validation.js'

/** OperatorService requests as validated domain values (see validation.ts on how rejections name fields). */

const pageLimitMax = 500
const pageLimitDefault = 50
const pageLimitSchema = z.number().int().max(pageLimitMax, `must be at most ${pageLimitMax}`)

const runRefSchema = z.object({ namespace: namespaceSchema, runId: uuidSchema })

export function parseRerunRun(
  request: RerunRunRequest,
  config: Limits,
): { namespace: string; runId: string; payload: { json: string; bytes: number } | undefined } {
  const parsed = parse(runRefSchema, request, '')
  if (request.payloadJson === undefined) return { ...parsed, payload: undefined }
  const payload = checkJsonValue('payload_json', request.payloadJson, config.maxPayloadBytes)
  return { ...parsed, payload: { json: payload.text, bytes: payload.bytes } }
}

const replaySchema = runRefSchema.extend({ fromStepId: textSchema(limits.stepIdMaxLength) })

export function parseReplayRun(request: ReplayRunRequest): { namespace: string; runId: string; fromStepId: string } {
  return parse(replaySchema, request, '')
}

const kinds = new Map<BulkActionKind, DomainBulkActionKind>([
  [BulkActionKind.BULK_ACTION_KIND_CANCEL, 'cancel'],
  [BulkActionKind.BULK_ACTION_KIND_RERUN, 'rerun'],
  [BulkActionKind.BULK_ACTION_KIND_REPLAY, 'replay'],
])

/** The kind's protocol value. */
export function toBulkActionKindMessage(kind: DomainBulkActionKind): BulkActionKind {
  for (const [message, value] of kinds) if (value === kind) return message
  return BulkActionKind.BULK_ACTION_KIND_UNSPECIFIED
}

const selectionSchema = z.object({
  queue: textSchema(limits.queueMaxLength),
  job: textSchema(limits.jobMaxLength),
  createdAfter: instantSchema.optional(),
  createdBefore: instantSchema.optional(),
})

function parseSelection(message: RunSelectionMessage | undefined): RunSelection {
  const selection = message ?? RunSelectionFactory.fromPartial({})
  const parsed = parse(selectionSchema, selection, 'selection')
  return {
    queue: parsed.queue || undefined,
    job: parsed.job || undefined,
    status: runStatusFromProto(selection.status),
    createdAfter: parsed.createdAfter,
    createdBefore: parsed.createdBefore,
    payloadMatchJson:
      selection.payloadMatchJson === ''
        ? undefined
        : checkJsonObject('selection.payload_match_json', selection.payloadMatchJson, limits.payloadMatchMaxBytes),
  }
}

const startSchema = z.object({ namespace: namespaceSchema, fromStepId: textSchema(limits.stepIdMaxLength), dryRun: z.boolean() })

export function parseStartBulkAction(request: StartBulkActionRequest): NewBulkAction & { isDryRun: boolean } {
  const parsed = parse(startSchema, request, '')
  const kind = kinds.get(request.kind)
  if (!kind) throw new InvalidArgumentError('kind', 'must be BULK_ACTION_KIND_CANCEL, _RERUN or _REPLAY')
  if (kind !== 'replay' && parsed.fromStepId !== '')
    throw new InvalidArgumentError('from_step_id', 'applies only to BULK_ACTION_KIND_REPLAY')
  return {
    namespace: parsed.namespace,
    kind,
    selection: parseSelection(request.selection),
    fromStepId: parsed.fromStepId,
    isDryRun: parsed.dryRun,
  }
}

const bulkActionRefSchema = z.object({ namespace: namespaceSchema, id: uuidSchema })

export function parseGetBulkAction(request: GetBulkActionRequest): { namespace: string; id: string } {
  return parse(bulkActionRefSchema, request, '')
}

const listBulkActionsSchema = z.object({ namespace: namespaceSchema, limit: pageLimitSchema })

export function parseListBulkActions(request: ListBulkActionsRequest): { namespace: string; limit: number } {
  const parsed = parse(listBulkActionsSchema, request, '')
  return { namespace: parsed.namespace, limit: parsed.limit || pageLimitDefault }
}

/** An events cursor as sent: base64url of "<receipt time in µs>:<event id>". */
export function encodeEventCursor(cursor: EventCursor): string {
  return Buffer.from(`${cursor.receivedAtUs}:${cursor.id}`).toString('base64url')
}

function decodeEventCursor(text: string): EventCursor | undefined {
  if (text === '') return undefined
  const match = /^(\d{1,20}):(.+)$/s.exec(Buffer.from(text, 'base64url').toString())
  if (!match) throw new InvalidArgumentError('cursor', 'is not a cursor returned by ListEvents')
  return { receivedAtUs: match[1]!, id: match[2]! }
}

const listEventsSchema = z.object({ namespace: namespaceSchema, name: textSchema(limits.eventNameMaxLength), limit: pageLimitSchema })

export function parseListEvents(request: ListEventsRequest): {
  namespace: string
  name: string | undefined
  limit: number
  after: EventCursor | undefined
} {
  const parsed = parse(listEventsSchema, request, '')
  return {
    namespace: parsed.namespace,
    name: parsed.name || undefined,
    limit: parsed.limit || pageLimitDefault,
    after: decodeEventCursor(request.cursor),
  }
}

export function parseListWorkers(request: ListWorkersRequest): string {
  return parseNamespace(request.namespace)
}

const queueStatsSchema = z.object({ namespace: namespaceSchema, queue: textSchema(limits.queueMaxLength) })

export function parseGetQueueStats(request: GetQueueStatsRequest): { namespace: string; queue: string | undefined } {
  const parsed = parse(queueStatsSchema, request, '')
  return { namespace: parsed.namespace, queue: parsed.queue || undefined }
}
