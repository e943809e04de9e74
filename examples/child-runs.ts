import { ChildRunFailedError, StackShift } from '@stackshift/sdk'

const stackshift = new StackShift({ address: process.env.STACKSHIFT_ADDRESS ?? 'localhost:50051' })

// A stand-in for your own image service.
const resize = (url: string, width: number) => ({ url: `${url}?w=${width}`, width })

stackshift.job<{ urls: string[] }>('publishAlbum', async ({ payload, step }) => {
  // Started together; the album resumes once, when the last one finished.
  const thumbnails = await Promise.all(
    payload.urls.map((url, i) =>
      step.invoke<{ url: string }>(`thumbnail:${i}`, { job: 'resizeImage', queue: 'images', payload: { url, width: 200 }, timeout: '10m' }),
    ),
  )
  try {
    const cover = { url: payload.urls[0], width: -1 }
    await step.invoke('cover', { job: 'resizeImage', queue: 'images', payload: cover, timeout: '10m', maxAttempts: 1 })
  } catch (error) {
    if (!(error instanceof ChildRunFailedError)) throw error // a suspension, a lost lease: let it through
    console.log('no cover:', error.status, error.childError.message)
  }
  return thumbnails.map((thumbnail) => thumbnail.url)
})
stackshift.job<{ url: string; width: number }>('resizeImage', ({ payload }) => {
  if (payload.width <= 0) throw new Error(`bad width ${payload.width}`)
  return resize(payload.url, payload.width)
})
const worker = stackshift.worker({ queues: ['albums', 'images'], concurrency: 1 })
await worker.start()

const run = await stackshift.queue('albums').enqueue('publishAlbum', { urls: ['a.png', 'b.png', 'c.png'] })
const done = await stackshift.waitForRun(run.id, { timeoutMs: 30_000 })
console.log(done.status, done.result, done.children.length) // completed [ 'a.png?w=200', 'b.png?w=200', 'c.png?w=200' ] 4

await worker.stop()
stackshift.close()
