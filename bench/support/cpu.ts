import { readFileSync, readdirSync } from 'node:fs'

/*
 * CPU time of processes, from /proc (Linux). A process's own time is utime +
 * stime; a parent also accumulates cutime + cstime from children it has
 * reaped, which is how the time of PostgreSQL backends that already exited
 * stays counted (the postmaster reaps them).
 */

const ticksPerSecond = 100

interface ProcStat {
  pid: number
  ppid: number
  /** Own CPU seconds. */
  own: number
  /** CPU seconds of reaped children. */
  children: number
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name is in parentheses and may contain spaces; fields follow the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
    const ppid = Number(fields[1])
    const [utime, stime, cutime, cstime] = [11, 12, 13, 14].map((i) => Number(fields[i]))
    return { pid, ppid, own: (utime! + stime!) / ticksPerSecond, children: (cutime! + cstime!) / ticksPerSecond }
  } catch {
    return undefined
  }
}

function allStats(): ProcStat[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .flatMap((name) => readStat(Number(name)) ?? [])
}

/**
 * CPU seconds used so far by a process and all its descendants, alive or
 * reaped. Take the difference of two readings to measure an interval.
 *
 * A descendant reaped while /proc is read can be in neither its own line nor
 * its parent's (or in both), so the tree is read between two other readings,
 * and read again if any parent in it reaped a child meanwhile: reaping is the
 * only thing that changes a parent's children times.
 */
export function treeCpuSeconds(rootPid: number): number {
  for (let attempt = 1; ; attempt++) {
    const before = subtree(allStats(), rootPid)
    const reading = subtree(allStats(), rootPid)
    const after = new Map(subtree(allStats(), rootPid).map((stat) => [stat.pid, stat.children]))
    const parents = new Set(before.map((stat) => stat.ppid))
    const isSettled = before.every((stat) => !parents.has(stat.pid) || after.get(stat.pid) === stat.children)
    if (isSettled || attempt === 10) return reading.reduce((total, stat) => total + stat.own + stat.children, 0)
  }
}

/** The process and its descendants. */
function subtree(stats: ProcStat[], rootPid: number): ProcStat[] {
  const byParent = new Map<number, ProcStat[]>()
  for (const stat of stats) byParent.set(stat.ppid, [...(byParent.get(stat.ppid) ?? []), stat])
  const root = stats.find((s) => s.pid === rootPid)
  const found: ProcStat[] = []
  const visit = (stat: ProcStat) => {
    found.push(stat)
    for (const child of byParent.get(stat.pid) ?? []) visit(child)
  }
  if (root) visit(root)
  return found
}

/** The postmaster's pid, from the data directory's postmaster.pid. */
export function postmasterPid(clusterDir: string): number {
  return Number(readFileSync(`${clusterDir}/postmaster.pid`, 'utf8').split('\n')[0])
}
