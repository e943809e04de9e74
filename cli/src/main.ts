import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { type ApiKeyInfo, type ApiKeyScope, StackShift, StackShiftError } from '@stackshift/sdk'

/*
 * The `stackshift` command: a client of the protocol like any other, built on
 * the SDK. It reads STACKSHIFT_ADDRESS (default localhost:50051) and
 * STACKSHIFT_API_KEY; flags override them.
 */

const usage = `Usage: stackshift <command> [options]

Commands:
  keys create --scopes <s1,s2> --name <name> [--namespace <ns>] [--expires-at <ISO date>]
                               create an API key and print it (shown only now)
  keys list [--namespace <ns>] [--include-revoked]
                               list API keys
  keys revoke <id>             revoke an API key

Options:
  --address <host:port>        server (default: STACKSHIFT_ADDRESS, else localhost:50051)
  --api-key <key>              key to call with (default: STACKSHIFT_API_KEY)
  --tls                        connect with TLS, trusting the system's certificate authorities
  --tls-ca <file>              connect with TLS, trusting this certificate authority (PEM)
  --help                       show this

Scopes: enqueue, read, worker, state, operate, admin. Namespace "*" means every namespace.`

const scopeNames: readonly ApiKeyScope[] = ['enqueue', 'read', 'worker', 'state', 'operate', 'admin']

/** A mistake in how the command was called: usage goes with it, exit code 2. */
class UsageError extends Error {}

function parseScopes(text: string | undefined): ApiKeyScope[] {
  if (!text) throw new UsageError('keys create needs --scopes, e.g. --scopes enqueue,read')
  return text.split(',').map((name) => {
    const scope = scopeNames.find((known) => known === name.trim())
    if (!scope) throw new UsageError(`unknown scope "${name}"; scopes: ${scopeNames.join(', ')}`)
    return scope
  })
}

function parseDate(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined
  const date = new Date(text)
  if (Number.isNaN(date.getTime())) throw new UsageError(`--expires-at "${text}" is not a date (use ISO 8601, e.g. 2027-01-31T00:00:00Z)`)
  return date
}

function describeKey(key: ApiKeyInfo): string {
  const state = key.revokedAt
    ? `revoked ${key.revokedAt.toISOString()}`
    : key.expiresAt
      ? `expires ${key.expiresAt.toISOString()}`
      : 'active'
  return [key.id, key.namespace, key.scopes.join(','), state, key.createdAt.toISOString(), key.name].join('\t')
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      address: { type: 'string' },
      'api-key': { type: 'string' },
      tls: { type: 'boolean' },
      'tls-ca': { type: 'string' },
      namespace: { type: 'string' },
      scopes: { type: 'string' },
      name: { type: 'string' },
      'expires-at': { type: 'string' },
      'include-revoked': { type: 'boolean' },
      help: { type: 'boolean' },
    },
  })
  if (values.help || positionals.length === 0) {
    console.log(usage)
    return values.help ? 0 : 2
  }
  const [group, command, ...rest] = positionals
  if (group !== 'keys' || !command) throw new UsageError(`unknown command "${positionals.join(' ')}"`)
  const caFile = values['tls-ca']
  const stackshift = new StackShift({
    address: values.address ?? (process.env.STACKSHIFT_ADDRESS || 'localhost:50051'),
    apiKey: values['api-key'] ?? process.env.STACKSHIFT_API_KEY,
    tls: caFile ? { ca: readFileSync(caFile) } : values.tls === true ? true : undefined,
  })
  try {
    switch (command) {
      case 'create': {
        const name = values.name
        if (!name) throw new UsageError('keys create needs --name, what the key is for')
        const key = await stackshift.admin.createApiKey({
          namespace: values.namespace,
          scopes: parseScopes(values.scopes),
          name,
          expiresAt: parseDate(values['expires-at']),
        })
        // The key alone on stdout, so `KEY=$(stackshift keys create ...)` works; what it is on stderr.
        console.log(key.secret)
        console.error(`created API key ${key.id} for namespace ${key.namespace} with scopes ${key.scopes.join(',')}; it is shown only now`)
        return 0
      }
      case 'list': {
        const keys = await stackshift.admin.listApiKeys({ namespace: values.namespace, includeRevoked: values['include-revoked'] === true })
        console.log(['id', 'namespace', 'scopes', 'state', 'created', 'name'].join('\t'))
        for (const key of keys) console.log(describeKey(key))
        return 0
      }
      case 'revoke': {
        const [id] = rest
        if (!id) throw new UsageError('keys revoke needs the id of the key')
        const key = await stackshift.admin.revokeApiKey(id)
        console.log(`revoked API key ${key.id} (${key.name})`)
        return 0
      }
      default:
        throw new UsageError(`unknown command "keys ${command}"`)
    }
  } finally {
    stackshift.close()
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof UsageError || (error instanceof TypeError && 'code' in error && error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION')) {
      console.error(`stackshift: ${error.message}\n\n${usage}`)
      process.exit(2)
    }
    console.error(`stackshift: ${error instanceof StackShiftError ? `${error.name}: ${error.message}` : String(error)}`)
    process.exit(1)
  },
)
