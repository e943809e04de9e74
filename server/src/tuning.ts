import { execFile } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { setPriority } from 'node:os'
import { promisify } from 'node:util'

/*
 * Tuning the server offers and applies only when its configuration asks for
 * it (STACKSHIFT_BACKGROUND_THREADS=idle): it changes how the operating
 * system schedules the server's own threads, so the operator opts in.
 *
 * V8 compiles hot functions and collects garbage on helper threads of this
 * process. On Linux a helper woken by the event loop thread is often queued on
 * that thread's CPU and preempts it; the event loop thread then waits,
 * runnable, for up to a scheduler tick (4 ms) while another CPU may sit idle,
 * and every request it would have answered waits too. A helper at idle
 * priority (SCHED_IDLE) does not preempt it on waking, and still gets every
 * CPU cycle the other threads leave free.
 *
 * Only the threads alive when this runs are changed: V8's helpers start with
 * the process. libuv's pool (DNS, file system) starts later, inherits the
 * event loop thread's priority and keeps it.
 */

const run = promisify(execFile)

/** What was done: how many threads, and how (`SCHED_IDLE`, or nice 19 where `chrt` is missing or refused). */
export interface BackgroundThreadsLowered {
  threads: number
  policy: 'SCHED_IDLE' | 'nice 19'
}

/** Ids of this process's threads other than the event loop thread (Linux only; elsewhere none). */
function helperThreadIds(): number[] {
  if (process.platform !== 'linux') return []
  return readdirSync('/proc/self/task')
    .map(Number)
    .filter((id) => id !== process.pid)
}

/**
 * Puts this process's helper threads at idle priority. Measured on a 2-core
 * machine (docs/performance.md, "Helper threads preempting the event loop"):
 * in the slowest windows of a run at 100 runs/s the event loop thread waited
 * 4 ms behind its own helpers instead of 72, enqueue-to-start p99 at 100/s was
 * 5.62–6.93 ms against 6.75–9.19 without, and the bulk drain did not suffer
 * (32,293 runs/s against 28,567).
 *
 * Uses util-linux's `chrt`, since Node has no binding for sched_setscheduler;
 * without it, falls back to the lowest nice value, which Node can set itself.
 * Returns undefined when there is nothing to change (not Linux).
 */
export async function lowerBackgroundThreadPriority(): Promise<BackgroundThreadsLowered | undefined> {
  const ids = helperThreadIds()
  if (ids.length === 0) return undefined
  let policy: BackgroundThreadsLowered['policy'] = 'SCHED_IDLE'
  let threads = 0
  for (const id of ids) {
    if (policy === 'SCHED_IDLE') {
      try {
        await run('chrt', ['--idle', '--pid', '0', String(id)])
        threads++
        continue
      } catch {
        // A thread that exited since it was listed says nothing about chrt.
        if (!existsSync(`/proc/self/task/${id}`)) continue
        policy = 'nice 19'
      }
    }
    try {
      setPriority(id, 19)
      threads++
    } catch {
      // The thread exited since it was listed.
    }
  }
  return { threads, policy }
}
