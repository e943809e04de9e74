import { X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createSecureContext } from 'node:tls'
import { ServerCredentials, experimental } from '@grpc/grpc-js'
import { ConfigError, type ServerConfig, flagName, settings } from '../config.js'
import type { Logger } from '../logger.js'

/**
 * How often the certificate, key and client CA files are read again, in ms:
 * a certificate rotated on disk is served to new connections within about
 * this long (connections already open keep theirs). The TLS settings'
 * descriptions in config.ts (and so the README) say 2 s as well.
 */
export const certificateRefreshIntervalMs = 2000

/** The settings this module reads. */
export type TlsSettings = Pick<ServerConfig, 'tlsCertFile' | 'tlsKeyFile' | 'tlsClientCaFile'>

/** How the gRPC server secures its connections. */
export interface ServerTls {
  /** `off`: plain text; `tls`: TLS; `mtls`: TLS, and clients must present a certificate from the client CA. */
  mode: 'off' | 'tls' | 'mtls'
  /** For `bindGrpcServer`. */
  credentials: ServerCredentials
  /**
   * What the server presents now, as last read from the files, for the other
   * endpoints that serve TLS (the console's HTTPS): the certificate chain and
   * key, and the client CA with mTLS. Undefined with TLS off, or while the
   * files do not make a usable pair.
   */
  currentFiles(): TlsFiles | undefined
  /** Stops reading the files. Call once the gRPC server has shut down. */
  close(): void
}

/** PEM contents of the TLS files. */
export interface TlsFiles {
  certificate: Buffer
  privateKey: Buffer
  /** With mTLS: the certificate authorities whose client certificates are accepted. */
  clientCa: Buffer | undefined
}

/** A setting as users write it: `STACKSHIFT_TLS_CERT_FILE (--tls-cert-file)`. */
const named = (setting: keyof TlsSettings) => `${settings[setting].env} (${flagName(settings[setting].env)})`

/**
 * The gRPC server's credentials from the TLS settings: plain text when none
 * is set; TLS with the certificate and key files; mTLS when the client CA
 * file is set as well. The files are read and checked now, so a missing
 * file, a key that does not match the certificate or a CA file without a
 * certificate fails the start with a ConfigError naming the setting and the
 * file. Afterwards they are read again every `certificateRefreshIntervalMs`,
 * and new connections get what they hold then: replace the certificate and
 * key together (by renaming into place, or a symlink swap as Kubernetes does
 * with secret volumes), since while the files do not make a usable pair, new
 * connections are refused.
 */
export async function loadServerTls(tls: TlsSettings, logger: Logger): Promise<ServerTls> {
  const { tlsCertFile: certFile, tlsKeyFile: keyFile, tlsClientCaFile: caFile } = tls
  if (certFile === undefined && keyFile === undefined) {
    if (caFile !== undefined)
      throw new ConfigError(
        `${named('tlsClientCaFile')} is set, but mTLS needs ${named('tlsCertFile')} and ${named('tlsKeyFile')} as well: the server presents its certificate before it asks for the client's`,
      )
    logger.info('TLS off: gRPC in plain text')
    return { mode: 'off', credentials: ServerCredentials.createInsecure(), currentFiles: () => undefined, close: () => undefined }
  }
  if (certFile === undefined || keyFile === undefined) {
    const [set, unset] = certFile === undefined ? (['tlsKeyFile', 'tlsCertFile'] as const) : (['tlsCertFile', 'tlsKeyFile'] as const)
    throw new ConfigError(`${named(set)} is set but ${named(unset)} is not: TLS needs both the certificate and its private key`)
  }

  const [cert, key, ca] = await Promise.all([
    readSettingFile('tlsCertFile', certFile),
    readSettingFile('tlsKeyFile', keyFile),
    caFile === undefined ? undefined : readSettingFile('tlsClientCaFile', caFile),
  ])
  const served = describeIdentity({ certificate: cert, privateKey: key })
  if (served.problem !== undefined)
    throw new ConfigError(`${named('tlsCertFile')} ${certFile} and ${named('tlsKeyFile')} ${keyFile}: ${served.problem}`)
  if (ca !== undefined) {
    const problem = describeCaProblem(ca)
    if (problem !== undefined) throw new ConfigError(`${named('tlsClientCaFile')} ${caFile}: ${problem}`)
  }

  const provider = new experimental.FileWatcherCertificateProvider({
    certificateFile: certFile,
    privateKeyFile: keyFile,
    caCertificateFile: caFile,
    refreshIntervalMs: certificateRefreshIntervalMs,
  })
  const files = { certFile, keyFile, caFile }
  const watch = watchUpdates(provider, files, logger)
  try {
    // The provider reads the files when its first listener arrives; waiting for that read here
    // means the server has its certificate from its first connection on.
    await watch.firstRead
  } catch (error) {
    watch.close()
    throw error
  }
  // grpc-js 1.14 takes the identity provider FIRST and the CA provider (or null) second, although
  // its .d.ts names them the other way round (test/tls.test.ts would fail with the order swapped).
  const credentials = experimental.createCertificateProviderServerCredentials(
    provider,
    caFile === undefined ? null : provider,
    caFile !== undefined,
  )
  const mode = caFile === undefined ? 'tls' : 'mtls'
  logger.info(
    {
      ...files,
      subject: served.subject,
      serialNumber: served.serialNumber,
      validTo: served.validTo,
      refreshIntervalMs: certificateRefreshIntervalMs,
    },
    mode === 'tls' ? 'TLS on' : 'TLS on, with client certificates required (mTLS)',
  )
  return { mode, credentials, currentFiles: () => watch.current(), close: () => watch.close() }
}

async function readSettingFile(setting: keyof TlsSettings, path: string): Promise<Buffer> {
  try {
    return await readFile(path)
  } catch (error) {
    throw new ConfigError(`${named(setting)}: cannot read ${path}: ${(error as Error).message}`)
  }
}

interface IdentityDescription {
  subject?: string
  serialNumber?: string
  validTo?: string
  /** Why the pair cannot be served; undefined when it can. */
  problem?: string
}

/** The certificate's subject, serial and expiry, or why the certificate and key cannot be served. */
function describeIdentity(identity: { certificate: Buffer; privateKey: Buffer }): IdentityDescription {
  let certificate: X509Certificate
  try {
    certificate = new X509Certificate(identity.certificate)
  } catch (error) {
    return { problem: `the certificate is not a PEM certificate (${(error as Error).message})` }
  }
  const described = { subject: certificate.subject, serialNumber: certificate.serialNumber, validTo: certificate.validTo }
  try {
    createSecureContext({ cert: identity.certificate, key: identity.privateKey })
  } catch (error) {
    return { ...described, problem: `not a usable certificate and private key (${(error as Error).message})` }
  }
  return described
}

/** Why the client CA file cannot be used, or undefined. */
function describeCaProblem(ca: Buffer): string | undefined {
  try {
    new X509Certificate(ca)
    return undefined
  } catch (error) {
    return `not a PEM certificate (${(error as Error).message})`
  }
}

/**
 * Listens to the provider's reads: resolves `firstRead` with the first one
 * (or rejects when it found the files unusable), and afterwards logs each
 * change (a new certificate served, files unreadable or not a pair, and the
 * same for the client CA) once, not at every read.
 */
function watchUpdates(
  provider: experimental.FileWatcherCertificateProvider,
  files: { certFile: string; keyFile: string; caFile: string | undefined },
  logger: Logger,
): { firstRead: Promise<void>; current(): TlsFiles | undefined; close(): void } {
  let settleFirstRead!: (error?: Error) => void
  const firstRead = new Promise<void>((resolve, reject) => (settleFirstRead = (error) => (error ? reject(error) : resolve())))
  let lastIdentity: experimental.IdentityCertificateUpdate | null | undefined
  let lastCa: experimental.CaCertificateUpdate | null | undefined
  let isFirstIdentity = true

  const onIdentity: experimental.IdentityCertificateUpdateListener = (update) => {
    const isSame =
      update === null
        ? lastIdentity === null
        : lastIdentity != null && update.certificate.equals(lastIdentity.certificate) && update.privateKey.equals(lastIdentity.privateKey)
    lastIdentity = update
    if (isFirstIdentity) {
      isFirstIdentity = false
      settleFirstRead(update === null ? new ConfigError(`cannot read ${files.certFile} or ${files.keyFile}`) : undefined)
      return
    }
    if (isSame) return
    const fields = { certFile: files.certFile, keyFile: files.keyFile }
    if (update === null) {
      logger.error(fields, 'cannot read the TLS certificate or key; new connections are refused until both are readable')
      return
    }
    const served = describeIdentity(update)
    if (served.problem !== undefined)
      logger.error(
        { ...fields, problem: served.problem },
        'the TLS certificate and key on disk are not a usable pair; new connections are refused until they are',
      )
    else
      logger.info(
        { ...fields, subject: served.subject, serialNumber: served.serialNumber, validTo: served.validTo },
        'TLS certificate reloaded',
      )
  }
  const onCa: experimental.CaCertificateUpdateListener = (update) => {
    const isChange =
      lastCa !== undefined && (update === null ? lastCa !== null : lastCa === null || !update.caCertificate.equals(lastCa.caCertificate))
    lastCa = update
    if (!isChange) return
    if (update === null)
      logger.error({ caFile: files.caFile }, 'cannot read the TLS client CA; new connections are refused until it is readable')
    else logger.info({ caFile: files.caFile }, 'TLS client CA reloaded')
  }

  provider.addIdentityCertificateListener(onIdentity)
  if (files.caFile !== undefined) provider.addCaCertificateListener(onCa)
  return {
    firstRead,
    current: () => {
      if (!lastIdentity || describeIdentity(lastIdentity).problem !== undefined) return undefined
      if (files.caFile !== undefined && !lastCa) return undefined
      return { certificate: lastIdentity.certificate, privateKey: lastIdentity.privateKey, clientCa: lastCa?.caCertificate }
    },
    close: () => {
      provider.removeIdentityCertificateListener(onIdentity)
      provider.removeCaCertificateListener(onCa)
    },
  }
}
