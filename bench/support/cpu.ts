import { readFileSync, readdirSync } from 'node:fs'

/*
 * CPU time of processes, from /proc (Linux). A process's own time is utime +
 * stime; a parent also accumulates cutime + cstime from children it has
 * reaped, which is how the time of PostgreSQL backends that already exited
 * stays counted (the postmaster reaps them). A backend that exits and is
 * reaped between the reading of its parent and its own is in neither: read
 * while the measured process keeps its connections open.
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
 */
export function treeCpuSeconds(rootPid: number): number {
  const stats = allStats()
  const byParent = new Map<number, ProcStat[]>()
  for (const stat of stats) byParent.set(stat.ppid, [...(byParent.get(stat.ppid) ?? []), stat])
  const root = stats.find((s) => s.pid === rootPid)
  if (!root) return 0
  let total = 0
  const visit = (stat: ProcStat) => {
    total += stat.own + stat.children
    for (const child of byParent.get(stat.pid) ?? []) visit(child)
  }
  visit(root)
  return total
}

/** The postmaster's pid, from the data directory's postmaster.pid. */
export function postmasterPid(clusterDir: string): number {
  return Number(readFileSync(`${clusterDir}/postmaster.pid`, 'utf8').split('\n')[0])
}
