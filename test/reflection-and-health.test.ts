import { fileURLToPath } from 'node:url'
import { fromBinary } from '@bufbuild/protobuf'
import { type DescriptorProto, type FileDescriptorProto, FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { expect, inject, it } from 'vitest'
import { connect, createTestDatabase } from './support/database.js'
import { useTestEnvironment } from './support/environment.js'
import { checkHealth } from './support/health.js'
import { startTestServer } from './support/server.js'
import { waitUntil } from './support/wait-until.js'

/*
 * What a tool like grpcurl does with only the server's address: list the
 * services by reflection, fetch the files that describe one, link them, and
 * call it. The reflection client is built from the reflection.proto that
 * @grpc/reflection ships; descriptors are decoded with @bufbuild/protobuf, an
 * implementation independent of the server's.
 */

const env = useTestEnvironment()

const reflectionProto = fileURLToPath(
  new URL('../node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto', import.meta.url),
)

/** A ServerReflectionInfo response as proto-loader decodes it: one of these is set. */
interface ReflectionResponse {
  list_services_response?: { service: Array<{ name: string }> }
  file_descriptor_response?: { file_descriptor_proto: Buffer[] }
  error_response?: { error_code: number; error_message: string }
}

/** A client of grpc.reflection.v1.ServerReflection, as loadPackageDefinition makes it. */
interface ReflectionClient {
  ServerReflectionInfo(options: grpc.CallOptions): grpc.ClientDuplexStream<Record<string, unknown>, ReflectionResponse>
  close(): void
}

const reflectionV1 = (
  grpc.loadPackageDefinition(protoLoader.loadSync(reflectionProto, { keepCase: true, oneofs: true })) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: new (address: string, credentials: grpc.ChannelCredentials) => ReflectionClient } } }
  }
).grpc.reflection.v1

/** Sends reflection requests on one ServerReflectionInfo stream; resolves with the responses in order. */
function reflect(address: string, requests: Array<Record<string, unknown>>): Promise<ReflectionResponse[]> {
  const client = new reflectionV1.ServerReflection(address, grpc.credentials.createInsecure())
  return new Promise((resolve, reject) => {
    const responses: ReflectionResponse[] = []
    const call = client.ServerReflectionInfo({ deadline: Date.now() + 10_000 })
    call.on('data', (response: ReflectionResponse) => responses.push(response))
    call.on('error', (error: Error) => {
      client.close()
      reject(error)
    })
    call.on('end', () => {
      client.close()
      resolve(responses)
    })
    for (const request of requests) call.write(request)
    call.end()
  })
}

/** The files a reflection response carries, decoded. */
function filesOf(response: ReflectionResponse): FileDescriptorProto[] {
  if (response.error_response) throw new Error(`reflection error: ${response.error_response.error_message}`)
  return response.file_descriptor_response!.file_descriptor_proto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes))
}

/**
 * Like grpcurl: the file that declares `symbol`, then every file it depends
 * on, fetched by name, recursively. Throws when a named dependency is missing.
 */
async function fetchFilesFor(address: string, symbol: string): Promise<Map<string, FileDescriptorProto>> {
  const files = new Map<string, FileDescriptorProto>()
  const [declaring] = filesOf((await reflect(address, [{ file_containing_symbol: symbol }]))[0]!)
  files.set(declaring!.name, declaring!)
  for (let pending = [...declaring!.dependency]; pending.length > 0;) {
    const name = pending.shift()!
    if (files.has(name)) continue
    const fetched = filesOf((await reflect(address, [{ file_by_filename: name }]))[0]!).find((file) => file.name === name)
    if (!fetched) throw new Error(`reflection has no file ${name}`)
    files.set(name, fetched)
    pending.push(...fetched.dependency)
  }
  return files
}

/** Full names (with a leading dot) of the messages and enums a file defines. */
function definedTypes(file: FileDescriptorProto): Set<string> {
  const names = new Set<string>()
  const visit = (scope: string, messages: readonly DescriptorProto[]) => {
    for (const message of messages) {
      const name = `${scope}.${message.name}`
      names.add(name)
      for (const enumType of message.enumType) names.add(`${name}.${enumType.name}`)
      visit(name, message.nestedType)
    }
  }
  for (const enumType of file.enumType) names.add(`.${file.package}.${enumType.name}`)
  visit(`.${file.package}`, file.messageType)
  return names
}

/** FileDescriptorSet { repeated FileDescriptorProto file = 1 }, encoded by hand: one length-delimited field per file. */
function encodeFileDescriptorSet(encodedFiles: readonly Uint8Array[]): Buffer {
  const parts: Buffer[] = []
  for (const file of encodedFiles) {
    const length: number[] = []
    for (let n = file.length; ; n >>>= 7) {
      if (n < 0x80) {
        length.push(n)
        break
      }
      length.push((n & 0x7f) | 0x80)
    }
    parts.push(Buffer.from([0x0a, ...length]), Buffer.from(file))
  }
  return Buffer.concat(parts)
}

it('reflection lists the StackShift services and the health service', async () => {
  const [response] = await reflect(env.server.address, [{ list_services: '*' }])
  const names = response!.list_services_response!.service.map((service) => service.name)
  expect(names).toEqual(
    expect.arrayContaining([
      'stackshift.jobs.v1.RunService',
      'stackshift.jobs.v1.WorkerService',
      'stackshift.jobs.v1.StateService',
      'stackshift.jobs.v1.ScheduleService',
      'grpc.health.v1.Health',
    ]),
  )
})

it("reflection serves RunService's file with its dependencies named, so every type it uses resolves", async () => {
  const files = await fetchFilesFor(env.server.address, 'stackshift.jobs.v1.RunService')
  const declaring = [...files.values()].find((file) => file.service.some((service) => service.name === 'RunService'))!
  expect(declaring.package).toBe('stackshift.jobs.v1')
  const runService = declaring.service.find((service) => service.name === 'RunService')!
  expect(runService.method.map((method) => method.name)).toEqual(
    expect.arrayContaining(['Enqueue', 'EnqueueBatch', 'GetRun', 'WaitForRun', 'SendEvent', 'CancelRun', 'ListRuns']),
  )

  // As a strict linker (grpcurl, protoc) sees it: a reference resolves only in
  // the file itself or in a file it names as a dependency.
  const visible = new Set([declaring, ...declaring.dependency.map((name) => files.get(name)!)].flatMap((file) => [...definedTypes(file)]))
  const references: string[] = runService.method.flatMap((method) => [method.inputType, method.outputType])
  const collect = (messages: readonly DescriptorProto[]) => {
    for (const message of messages) {
      references.push(...message.field.map((field) => field.typeName).filter((name) => name !== ''))
      collect(message.nestedType)
    }
  }
  collect(declaring.messageType)
  // Field names as written in the .proto files, as protoc would describe them.
  const enqueueResponse = declaring.messageType.find((message) => message.name === 'EnqueueResponse')!
  expect(enqueueResponse.field.map((field) => field.name)).toContain('run_id')
  expect(references).toContain('.google.protobuf.Timestamp')
  expect(references.filter((reference) => !visible.has(reference))).toEqual([])
})

/** RunService's client class as loadPackageDefinition makes it from the files reflection served. */
type ReflectedRunServiceClass = new (
  address: string,
  credentials: grpc.ChannelCredentials,
) => {
  Enqueue(request: Record<string, unknown>, callback: (error: Error | null, response: { run_id: string }) => void): void
  close(): void
}

it('a client built from reflection alone enqueues a run', async () => {
  const files = await fetchFilesFor(env.server.address, 'stackshift.jobs.v1.RunService')
  const { toBinary } = await import('@bufbuild/protobuf')
  const descriptorSet = encodeFileDescriptorSet([...files.values()].map((file) => toBinary(FileDescriptorProtoSchema, file)))
  const definition = protoLoader.loadFileDescriptorSetFromBuffer(descriptorSet, { keepCase: true, longs: Number })
  const v1 = (
    grpc.loadPackageDefinition(definition) as unknown as { stackshift: { jobs: { v1: { RunService: ReflectedRunServiceClass } } } }
  ).stackshift.jobs.v1
  const client = new v1.RunService(env.server.address, grpc.credentials.createInsecure())
  try {
    const response = await new Promise<{ run_id: string }>((resolve, reject) =>
      client.Enqueue(
        { run: { queue: 'reflected', job: 'discovered', payload_json: '{"via":"reflection"}' } },
        (error: Error | null, answer: { run_id: string }) => (error ? reject(error) : resolve(answer)),
      ),
    )
    const { rows } = await env.db.query(`SELECT queue, job, payload FROM stackshift.runs WHERE id = $1`, [response.run_id])
    expect(rows).toEqual([{ queue: 'reflected', job: 'discovered', payload: { via: 'reflection' } }])
  } finally {
    client.close()
  }
})

it('the health status follows the database: NOT_SERVING while it refuses connections, SERVING again once it accepts them', async () => {
  const databaseUrl = await createTestDatabase()
  const name = new URL(databaseUrl).pathname.slice(1)
  const server = await startTestServer(databaseUrl, { healthProbeIntervalMs: 100 })
  const admin = await connect(inject('adminDatabaseUrl'))
  const allowConnections = (isAllowed: boolean) => admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS ${isAllowed}`)
  try {
    expect(await checkHealth(server.address)).toBe('SERVING')
    await allowConnections(false)
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, [name])
    await waitUntil(
      () => checkHealth(server.address),
      (status) => status === 'NOT_SERVING',
    )
    expect(await checkHealth(server.address, 'stackshift.jobs.v1.RunService')).toBe('NOT_SERVING')

    await allowConnections(true)
    await waitUntil(
      () => checkHealth(server.address),
      (status) => status === 'SERVING',
    )
    expect(await checkHealth(server.address, 'stackshift.jobs.v1.WorkerService')).toBe('SERVING')
  } finally {
    await allowConnections(true)
    await admin.end()
    await server.stop()
  }
})

it('the health status stays SERVING while slow statements hold every connection of the pool, past its acquire timeout', async () => {
  const server = await startTestServer(await createTestDatabase(), { healthProbeIntervalMs: 100, dbPoolSize: 2 })
  const sleepSeconds = 11
  try {
    // Both pool connections sleep for longer than the pool's 10 s acquire
    // timeout: a probe that had to wait for one of them would fail.
    const sleeps = [1, 2].map(() =>
      server.server.db.transaction(async (trx) => {
        await trx.raw('SET LOCAL statement_timeout = 0')
        await trx.raw('SELECT pg_sleep(?)', [sleepSeconds])
      }),
    )
    const statuses = new Set<string>()
    const startedAt = Date.now()
    while (Date.now() - startedAt < (sleepSeconds - 0.5) * 1000) {
      statuses.add(await checkHealth(server.address))
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
    await Promise.all(sleeps)
    expect([...statuses]).toEqual(['SERVING'])
  } finally {
    await server.stop()
  }
})
