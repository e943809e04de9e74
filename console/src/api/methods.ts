import {
  GetBulkActionRequest,
  GetBulkActionResponse,
  GetCallerRequest,
  GetCallerResponse,
  GetQueueStatsRequest,
  GetQueueStatsResponse,
  ListBulkActionsRequest,
  ListBulkActionsResponse,
  ListEventsRequest,
  ListEventsResponse,
  ListWorkersRequest,
  ListWorkersResponse,
  OperatorServiceService,
  ReplayRunRequest,
  ReplayRunResponse,
  RerunRunRequest,
  RerunRunResponse,
  StartBulkActionRequest,
  StartBulkActionResponse,
} from '@stackshift/proto/operator-service'
import {
  CancelRunRequest,
  CancelRunResponse,
  GetRunRequest,
  GetRunResponse,
  ListRunsRequest,
  ListRunsResponse,
  RunServiceService,
  SendEventRequest,
  SendEventResponse,
} from '@stackshift/proto/run-service'
import {
  ListSchedulesRequest,
  ListSchedulesResponse,
  PauseScheduleRequest,
  PauseScheduleResponse,
  ResumeScheduleRequest,
  ResumeScheduleResponse,
  ScheduleServiceService,
  TriggerScheduleRequest,
  TriggerScheduleResponse,
} from '@stackshift/proto/schedule-service'
import { GetRequest, GetResponse, ListRequest, ListResponse, StateServiceService } from '@stackshift/proto/state-service'
import type { Method } from './connect-client.js'

/*
 * The methods the console calls, each paired with its generated message
 * functions. Paths come from the generated service definitions, so a
 * renamed method fails the build rather than a call.
 */

const method = <Request, Response>(
  definition: { path: string },
  request: Method<Request, Response>['request'],
  response: Method<Request, Response>['response'],
): Method<Request, Response> => ({ path: definition.path, request, response })

export const listRuns = method(RunServiceService.listRuns, ListRunsRequest, ListRunsResponse)
export const getRun = method(RunServiceService.getRun, GetRunRequest, GetRunResponse)
export const cancelRun = method(RunServiceService.cancelRun, CancelRunRequest, CancelRunResponse)
export const sendEvent = method(RunServiceService.sendEvent, SendEventRequest, SendEventResponse)

export const listStateEntries = method(StateServiceService.list, ListRequest, ListResponse)
export const getStateEntry = method(StateServiceService.get, GetRequest, GetResponse)

export const getCaller = method(OperatorServiceService.getCaller, GetCallerRequest, GetCallerResponse)
export const rerunRun = method(OperatorServiceService.rerunRun, RerunRunRequest, RerunRunResponse)
export const replayRun = method(OperatorServiceService.replayRun, ReplayRunRequest, ReplayRunResponse)
export const startBulkAction = method(OperatorServiceService.startBulkAction, StartBulkActionRequest, StartBulkActionResponse)
export const getBulkAction = method(OperatorServiceService.getBulkAction, GetBulkActionRequest, GetBulkActionResponse)
export const listBulkActions = method(OperatorServiceService.listBulkActions, ListBulkActionsRequest, ListBulkActionsResponse)
export const listEvents = method(OperatorServiceService.listEvents, ListEventsRequest, ListEventsResponse)
export const listWorkers = method(OperatorServiceService.listWorkers, ListWorkersRequest, ListWorkersResponse)
export const getQueueStats = method(OperatorServiceService.getQueueStats, GetQueueStatsRequest, GetQueueStatsResponse)

export const listSchedules = method(ScheduleServiceService.listSchedules, ListSchedulesRequest, ListSchedulesResponse)
export const pauseSchedule = method(ScheduleServiceService.pauseSchedule, PauseScheduleRequest, PauseScheduleResponse)
export const resumeSchedule = method(ScheduleServiceService.resumeSchedule, ResumeScheduleRequest, ResumeScheduleResponse)
export const triggerSchedule = method(ScheduleServiceService.triggerSchedule, TriggerScheduleRequest, TriggerScheduleResponse)
