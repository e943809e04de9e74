import type { JobServiceServer } from '@stackshift/proto/job-service'
import type { Logger } from '../logger.js'
import type { FlowPolicies } from '../operations/flow-policies.js'
import { unaryHandler } from './error-map.js'
import { parseConfigureJob, parseConfigureQueue, parseGetJob, parseGetQueue, toJobInfo, toQueueInfo } from './job-requests.js'
import { parseNamespace } from './validation.js'

/** JobService: validate, call the flow-control policies, convert. */
export function createJobService(deps: { logger: Logger; policies: FlowPolicies }): JobServiceServer {
  const { logger, policies } = deps
  return {
    configureJob: unaryHandler(logger, async (request) => {
      const { namespace, job, policies: jobPolicies } = parseConfigureJob(request)
      return { job: toJobInfo(await policies.configureJob(namespace, job, jobPolicies)) }
    }),
    getJob: unaryHandler(logger, async (request) => {
      const { namespace, job } = parseGetJob(request)
      return { job: toJobInfo(await policies.getJob(namespace, job)) }
    }),
    listJobs: unaryHandler(logger, async (request) => ({
      jobs: (await policies.listJobs(parseNamespace(request.namespace))).map(toJobInfo),
    })),
    configureQueue: unaryHandler(logger, async (request) => {
      const { namespace, queue, concurrency } = parseConfigureQueue(request)
      return { queue: toQueueInfo(await policies.configureQueue(namespace, queue, concurrency)) }
    }),
    getQueue: unaryHandler(logger, async (request) => {
      const { namespace, queue } = parseGetQueue(request)
      return { queue: toQueueInfo(await policies.getQueue(namespace, queue)) }
    }),
  }
}
