import { expect, it } from 'vitest'
import { ResourceExhaustedError } from '../../server/src/core/errors.js'
import { GroupCommit } from '../../server/src/operations/group-commit.js'

/** A write whose batches the test completes by hand. */
function controlledWrite() {
  const batches: Array<{ items: number[]; finish: () => void }> = []
  const write = (items: number[]) =>
    new Promise<Array<number | Error>>((resolve) => {
      batches.push({ items, finish: () => resolve(items.map((n) => (n < 0 ? new Error(`bad ${n}`) : n * 10))) })
    })
  return { batches, write }
}

const tick = () => new Promise((resolve) => setImmediate(resolve))

it('items that arrive while a write is in flight are written together in the next batch', async () => {
  const { batches, write } = controlledWrite()
  const commit = new GroupCommit(write, { maxBatchSize: 100, maxInFlight: 1, isItemError: () => true })
  const first = commit.submit(1)
  await tick()
  expect(batches.map((b) => b.items)).toEqual([[1]])
  const later = [2, 3, 4].map((n) => commit.submit(n))
  await tick()
  // Still one batch: the others wait for it to commit.
  expect(batches).toHaveLength(1)
  batches[0]!.finish()
  expect(await first).toBe(10)
  while (batches.length < 2) await tick()
  expect(batches.map((b) => b.items)).toEqual([[1], [2, 3, 4]])
  batches[1]!.finish()
  expect(await Promise.all(later)).toEqual([20, 30, 40])
})

it('answers a caller only after the batch holding its item committed', async () => {
  const { batches, write } = controlledWrite()
  const commit = new GroupCommit(write, { maxBatchSize: 100, maxInFlight: 1, isItemError: () => true })
  let isAnswered = false
  const pending = commit.submit(7).then((n) => ((isAnswered = true), n))
  await tick()
  await tick()
  expect(isAnswered).toBe(false)
  batches[0]!.finish()
  expect(await pending).toBe(70)
})

it('an error for one item fails only that caller', async () => {
  const { batches, write } = controlledWrite()
  const commit = new GroupCommit(write, { maxBatchSize: 100, maxInFlight: 1, isItemError: () => true })
  const results = [commit.submit(1), commit.submit(-1), commit.submit(2)].map((p) =>
    p.then(
      (n) => n,
      (e: unknown) => (e as Error).message,
    ),
  )
  await tick()
  batches[0]!.finish()
  expect(await Promise.all(results)).toEqual([10, 'bad -1', 20])
})

it('a batch that throws is retried item by item when the error may come from one item', async () => {
  const written: number[][] = []
  const commit = new GroupCommit(
    (items: number[]) => {
      written.push(items)
      if (items.includes(13)) return Promise.reject(new Error('value 13 violates a constraint'))
      return Promise.resolve(items.map((n) => n))
    },
    { maxBatchSize: 100, maxInFlight: 1, isItemError: () => true },
  )
  const results = await Promise.all(
    [11, 12, 13].map((n) =>
      commit.submit(n).then(
        (v) => v,
        (e: unknown) => (e as Error).message,
      ),
    ),
  )
  expect(results).toEqual([11, 12, 'value 13 violates a constraint'])
  expect(written).toEqual([[11, 12, 13], [11], [12], [13]])
})

it('a batch that throws for a reason outside the items fails every caller at once', async () => {
  let writes = 0
  const commit = new GroupCommit(
    () => {
      writes++
      return Promise.reject(new Error('connection refused'))
    },
    { maxBatchSize: 100, maxInFlight: 1, isItemError: () => false },
  )
  const results = await Promise.all([1, 2, 3].map((n) => commit.submit(n).catch((e: unknown) => (e as Error).message)))
  expect(results).toEqual(['connection refused', 'connection refused', 'connection refused'])
  expect(writes).toBe(1)
})

it('never puts more than maxBatchSize items in one batch', async () => {
  const sizes: number[] = []
  const commit = new GroupCommit(
    (items: number[]) => {
      sizes.push(items.length)
      return Promise.resolve(items)
    },
    { maxBatchSize: 4, maxInFlight: 1, isItemError: () => true },
  )
  await Promise.all(Array.from({ length: 10 }, (_, i) => commit.submit(i)))
  expect(sizes).toEqual([4, 4, 2])
})

it('beyond maxPending waiting items, submit is refused at once with ResourceExhaustedError; the waiting ones are still written', async () => {
  const { batches, write } = controlledWrite()
  const commit = new GroupCommit(write, { maxBatchSize: 100, maxInFlight: 1, maxPending: 3, itemsName: 'numbers', isItemError: () => true })
  const inFlight = commit.submit(1)
  await tick()
  // 1 is being written; 2, 3 and 4 wait, which is all that may.
  const waiting = [2, 3, 4].map((n) => commit.submit(n))
  const refused = await commit.submit(5).then(
    () => undefined,
    (error: unknown) => error,
  )
  expect(refused).toBeInstanceOf(ResourceExhaustedError)
  expect((refused as Error).message).toBe('request: the server has 3 numbers waiting to be written (at most 3 may wait); retry later')
  batches[0]!.finish()
  expect(await inFlight).toBe(10)
  while (batches.length < 2) await tick()
  expect(batches[1]!.items).toEqual([2, 3, 4])
  batches[1]!.finish()
  expect(await Promise.all(waiting)).toEqual([20, 30, 40])
  // Room again: the next item is taken.
  const later = commit.submit(6)
  while (batches.length < 3) await tick()
  batches[2]!.finish()
  expect(await later).toBe(60)
})

it('submitAll takes every item or, when they would not all fit, none', async () => {
  const { batches, write } = controlledWrite()
  const commit = new GroupCommit(write, { maxBatchSize: 100, maxInFlight: 1, maxPending: 3, isItemError: () => true })
  await expect(commit.submitAll([1, 2, 3, 4])).rejects.toBeInstanceOf(ResourceExhaustedError)
  const all = commit.submitAll([1, 2, 3])
  await tick()
  expect(batches.map((b) => b.items)).toEqual([[1, 2, 3]])
  batches[0]!.finish()
  expect(await all).toEqual([10, 20, 30])
})
