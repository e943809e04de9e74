import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks'
import { replaceAsyncResourceBind } from '@stackshift/sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase } from './support/database.js'
import { ChildScript } from './support/processes.js'
import { type TestServer, startTestServer } from './support/server.js'

/*
 * The SDK's tuning (sdk/src/tuning.ts) is opt-in: a StackShift client leaves
 * the process as Node made it. On Node 20 and 22 an application may call
 * replaceAsyncResourceBind(), which replaces AsyncResource.prototype.bind,
 * which Node's HTTP/2 client calls for every gRPC call, with an equivalent
 * that does not keep each call's objects alive through young-generation
 * collections.
 */

const major = Number(process.versions.node.split('.')[0])
const replacesOnThisNode = major < 24

/** AsyncResource.prototype, with the `bind` these tests read, compare and replace typed as a value rather than a method. */
const resourcePrototype: { bind: AsyncResource['bind'] } = AsyncResource.prototype

let server: TestServer

beforeAll(async () => {
  server = await startTestServer(await createTestDatabase())
})

afterAll(async () => {
  await server.stop()
})

async function promotedBytes(replace: boolean): Promise<number> {
  const child = new ChildScript('test/fixtures/bound-function-garbage.ts', { REPLACE_BIND: replace ? '1' : '0' }, ['--expose-gc'])
  const line = await child.waitForLine(/promotedBytes/)
  await child.kill()
  return (JSON.parse(line) as { promotedBytes: number }).promotedBytes
}

it('a client and worker that run a job leave AsyncResource.prototype.bind as Node has it', async () => {
  // In a process of its own: the tests below replace the method in this one.
  const child = new ChildScript('test/fixtures/untuned-client.ts', { STACKSHIFT_ADDRESS: server.address })
  try {
    const line = await child.waitForLine(/isNodesBind/)
    expect(JSON.parse(line)).toEqual({ status: 'completed', isNodesBind: true })
  } finally {
    await child.kill()
  }
})

describe.runIf(replacesOnThisNode)('AsyncResource.prototype.bind on Node 20 and 22', () => {
  it('a wrapper another library put in place of Node’s method is left alone', () => {
    const nodeBind = resourcePrototype.bind
    const wrapper = function bind(this: AsyncResource, fn: (...args: unknown[]) => unknown, thisArg?: unknown) {
      return (nodeBind as (fn: unknown, thisArg?: unknown) => unknown).call(this, fn, thisArg)
    } as AsyncResource['bind']
    resourcePrototype.bind = wrapper
    try {
      expect(replaceAsyncResourceBind()).toBe(false)
      expect(resourcePrototype.bind).toBe(wrapper)
    } finally {
      resourcePrototype.bind = nodeBind
    }
  })

  it('replaceAsyncResourceBind() replaces it, and bound functions behave as with Node’s own', async () => {
    const nodeBind = resourcePrototype.bind
    expect(replaceAsyncResourceBind()).toBe(true)
    expect(resourcePrototype.bind).not.toBe(nodeBind)
    const replacement = resourcePrototype.bind
    // A second call keeps the replacement and says it is in place.
    expect(replaceAsyncResourceBind()).toBe(true)
    expect(resourcePrototype.bind).toBe(replacement)

    // The function runs in the async scope the resource was created in.
    const storage = new AsyncLocalStorage<string>()
    const resource = storage.run('at creation', () => new AsyncResource('Test'))
    const readStore = storage.run('at bind', () => resource.bind(() => storage.getStore()))
    expect(storage.run('at call', readStore)).toBe('at creation')

    // `this` is the caller's without thisArg and thisArg with it; arguments and length pass through.
    const target = { name: 'target' }
    const method = resource.bind(function (this: unknown, a: number, b: number) {
      return { self: this, sum: a + b }
    })
    const holder = { method }
    expect(holder.method(2, 3)).toEqual({ self: holder, sum: 5 })
    expect(method.length).toBe(2)
    expect(method.name).toBe('bound')
    // The typings know only bind(fn); Node's method also takes thisArg.
    const withThisArg = resource as { bind(fn: () => unknown, thisArg: unknown): () => unknown }
    const pinned = withThisArg.bind(function (this: unknown) {
      return this
    }, target)
    expect(pinned.call({ other: true })).toBe(target)

    // The deprecated asyncResource property still reads and writes the resource, with DEP0172.
    const warnings: string[] = []
    const onWarning = (warning: Error & { code?: string }) => warnings.push(warning.code ?? warning.name)
    process.on('warning', onWarning)
    const other = new AsyncResource('Other')
    const withProperty = method as unknown as { asyncResource: AsyncResource }
    expect(withProperty.asyncResource).toBe(resource)
    withProperty.asyncResource = other
    expect(withProperty.asyncResource).toBe(other)
    expect(Object.keys(method)).toContain('asyncResource')
    // Warnings are emitted on the next tick.
    await new Promise((resolve) => setImmediate(resolve))
    process.off('warning', onWarning)
    expect(warnings).toEqual(['DEP0172'])
  })

  it('a function that is not one is refused with Node’s own error', () => {
    replaceAsyncResourceBind()
    // Vitest types matchers as any; toThrow takes this one as the Error it stands in for.
    expect(() => new AsyncResource('Test').bind(42 as unknown as () => void)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }) as Error,
    )
  })

  it('bound functions that were dropped no longer survive young-generation collections', async () => {
    // 2,000 functions holding 8 KB each: with Node's own method nearly all of it reaches the old generation.
    const [withNodes, withReplacement] = [await promotedBytes(false), await promotedBytes(true)]
    expect(withNodes).toBeGreaterThan(8_000_000)
    expect(withReplacement).toBeLessThan(2_000_000)
  })
})

describe.runIf(!replacesOnThisNode)('AsyncResource.prototype.bind on Node 24 and later', () => {
  it('is left as Node has it', () => {
    const nodeBind = resourcePrototype.bind
    expect(replaceAsyncResourceBind()).toBe(false)
    expect(resourcePrototype.bind).toBe(nodeBind)
  })
})
