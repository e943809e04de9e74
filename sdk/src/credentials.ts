import { X509Certificate } from 'node:crypto'
import { type ChannelCredentials, InterceptingCall, type Interceptor, credentials } from '@grpc/grpc-js'

/**
 * TLS to a server with a private certificate authority, or with a client
 * certificate (mTLS). PEM text or the bytes of a PEM file.
 */
export interface TlsOptions {
  /** Certificate authorities to trust, instead of Node's default ones: for a server whose certificate a private CA signed. */
  ca?: string | Buffer
  /** Client certificate chain, for a server that requires one (mTLS). Give `key` with it. */
  cert?: string | Buffer
  /** Private key of `cert`. */
  key?: string | Buffer
}

/** The environment variable the API key is read from when `apiKey` is not given. */
export const apiKeyEnvironmentVariable = 'STACKSHIFT_API_KEY'

/**
 * The channel credentials of `options`: `credentials` as given, else TLS as
 * `tls` says, else plain text. Giving both `credentials` and `tls` is refused
 * rather than one silently winning. Bad PEM, or a key that does not match
 * its certificate, is a TypeError now rather than a failed connection later.
 */
export function channelCredentialsFor(options: { credentials?: ChannelCredentials; tls?: unknown }): ChannelCredentials {
  // `tls` is checked as JavaScript callers may pass it.
  const { tls } = options
  if (options.credentials !== undefined) {
    if (tls !== undefined && tls !== false)
      throw new TypeError('StackShift options.credentials and options.tls cannot both be given: put the TLS settings in one of them')
    return options.credentials
  }
  if (tls === undefined || tls === false) return credentials.createInsecure()
  if (tls === true) return credentials.createSsl()
  if (typeof tls !== 'object' || tls === null) throw new TypeError('StackShift options.tls must be true, false or { ca?, cert?, key? }')
  const given = tls as TlsOptions
  const ca = pemBytes(given.ca, 'ca')
  const cert = pemBytes(given.cert, 'cert')
  const key = pemBytes(given.key, 'key')
  // A CA that is not PEM would be ignored without a word, and every connection would fail later.
  if (ca !== null) {
    try {
      new X509Certificate(ca)
    } catch (error) {
      throw new TypeError(
        `StackShift options.tls.ca holds no PEM certificate (${(error as Error).message}): give the certificate's text, not its file's path`,
        { cause: error },
      )
    }
  }
  if ((cert === null) !== (key === null))
    throw new TypeError('StackShift options.tls.cert and options.tls.key go together: a client certificate needs its private key')
  try {
    return credentials.createSsl(ca, key, cert)
  } catch (error) {
    throw new TypeError(`StackShift options.tls: ${(error as Error).message}`, { cause: error })
  }
}

function pemBytes(value: unknown, name: keyof TlsOptions): Buffer | null {
  if (value === undefined) return null
  if (typeof value === 'string') return Buffer.from(value)
  if (Buffer.isBuffer(value)) return value
  throw new TypeError(`StackShift options.tls.${name} must be PEM text or a Buffer`)
}

/**
 * The API key to send: the option when given (`''` for none), else
 * STACKSHIFT_API_KEY, else none. It must be able to travel as a header
 * value: visible ASCII, no spaces.
 */
export function resolveApiKey(option: unknown, env: NodeJS.ProcessEnv): string | undefined {
  const source = option === undefined ? apiKeyEnvironmentVariable : 'options.apiKey'
  const apiKey: unknown = option ?? env[apiKeyEnvironmentVariable]
  if (apiKey === undefined || apiKey === '') return undefined
  if (typeof apiKey !== 'string' || !/^[\x21-\x7e]+$/.test(apiKey))
    throw new TypeError(`StackShift ${source} must be visible ASCII characters without spaces (an API key as the server issued it)`)
  return apiKey
}

/**
 * Adds `authorization: Bearer <apiKey>` to the metadata of every call and
 * stream. An interceptor rather than call credentials: grpc-js refuses call
 * credentials on a channel without TLS, and a server on loopback may well
 * have none.
 */
export function apiKeyInterceptor(apiKey: string): Interceptor {
  const authorization = `Bearer ${apiKey}`
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start: (metadata, listener, next) => {
        metadata.set('authorization', authorization)
        next(metadata, listener)
      },
    })
}
