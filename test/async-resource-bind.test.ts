import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks'
import { StackShift, replaceAsyncResourceBind } from '@stackshift/sdk'
import { describe, expect, it } from 'vitest'
import { ChildScript } from './support/processes.js'

/*
 * On Node 20 and 22 a StackShift client replaces AsyncResource.prototype.bind,
 * which Node's HTTP/2 client calls for every gRPC call, with an equivalent
 * that does not keep each call's objects alive through young-generation
 * collections.
 */

const major = Number(process.versions.node.split('.')[0])
const replacesOnThisNode = major < 24

async function promotedBytes(replace: boolean): Promise<number> {
  const child = new ChildScript('test/fixtures/bound-function-garbage.ts', { REPLACE_BIND: replace ? '1' : '0' }, ['--expose-gc'])
  const line = await child.waitForLine(/promotedBytes/)
  await child.kill()
  return (JSON.parse(line) as { promotedBytes: number }).promotedBytes
}

describe.runIf(replacesOnThisNode)('AsyncResource.prototype.bind on Node 20 and 22', () => {
  it('a client created with replaceAsyncResourceBind: false leaves Node’s own method in place', () => {
    const nodeBind = AsyncResource.prototype.bind
    new StackShift({ address: '127.0.0.1:1', replaceAsyncResourceBind: false }).close()
    expect(AsyncResource.prototype.bind).toBe(nodeBind)
  })

  it('a client replaces it, and bound functions behave as with Node’s own', async () => {
    const nodeBind = AsyncResource.prototype.bind
    new StackShift({ address: '127.0.0.1:1' }).close()
    expect(AsyncResource.prototype.bind).not.toBe(nodeBind)
    expect(replaceAsyncResourceBind()).toBe(true)

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
    const bindTo = resource.bind as unknown as (fn: () => unknown, thisArg: unknown) => () => unknown
    const pinned = bindTo.call(
      resource,
      function (this: unknown) {
        return this
      },
      target,
    )
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
    expect(() => new AsyncResource('Test').bind(42 as unknown as () => void)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }),
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
    const nodeBind = AsyncResource.prototype.bind
    new StackShift({ address: '127.0.0.1:1' }).close()
    expect(replaceAsyncResourceBind()).toBe(false)
    expect(AsyncResource.prototype.bind).toBe(nodeBind)
  })
})
