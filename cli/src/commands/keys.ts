import type { ApiKeyInfo, ApiKeyScope } from '@stackshift/sdk'
import type { Arguments } from '../arguments.js'
import type { Command } from '../command.js'
import { chosenNamespace } from '../connection.js'
import { formatInstant } from '../format.js'
import { renderTable } from '../table.js'

/* `stackshift keys ...`: API keys (the admin scope). */

const scopeNames: readonly ApiKeyScope[] = ['enqueue', 'read', 'worker', 'state', 'operate', 'admin']

function parseScopes(args: Arguments): ApiKeyScope[] {
  const text = args.required('scopes', `what the key may do, e.g. --scopes enqueue,read (scopes: ${scopeNames.join(', ')})`)
  return text.split(',').map((name) => {
    const scope = scopeNames.find((known) => known === name.trim())
    if (!scope) throw args.usageError(`unknown scope "${name}"; scopes: ${scopeNames.join(', ')}`)
    return scope
  })
}

function keyState(key: ApiKeyInfo): string {
  if (key.revokedAt) return `revoked ${formatInstant(key.revokedAt)}`
  return key.expiresAt ? `expires ${formatInstant(key.expiresAt)}` : 'active'
}

const create: Command = {
  words: ['keys', 'create'],
  operands: [],
  summary: 'create an API key and print it (it is shown only now)',
  options: {
    scopes: `what the key may do: ${scopeNames.join(', ')}`,
    name: 'what the key is for',
    namespace: 'the namespace the key may act in, "*" for every one (default: as for every command)',
    'expires-at': 'when the key stops working (ISO 8601; default: never)',
  },
  async run({ args, client, note }) {
    args.expectOperands([])
    const scopes = parseScopes(args)
    const name = args.required('name', 'what the key is for')
    const expiresAt = args.instant('expires-at')
    const key = await client().admin.createApiKey({ scopes, name, expiresAt })
    // The key alone on stdout, so `KEY=$(stackshift keys create ...)` works; what it is on stderr.
    note(`created API key ${key.id} for namespace ${key.namespace} with scopes ${key.scopes.join(',')}; it is shown only now`)
    return { json: key, text: key.secret }
  },
}

const list: Command = {
  words: ['keys', 'list'],
  operands: [],
  summary: 'list API keys, newest first',
  options: {
    namespace: "only this namespace's keys (default: STACKSHIFT_NAMESPACE, else every key yours manages)",
    'include-revoked': 'list revoked keys too',
  },
  async run({ args, client, env }) {
    args.expectOperands([])
    const keys = await client().admin.listApiKeys({
      namespace: chosenNamespace(args, env),
      includeRevoked: args.flag('include-revoked'),
    })
    const rows = keys.map((key) => [key.id, key.namespace, key.scopes.join(','), keyState(key), formatInstant(key.createdAt), key.name])
    return { json: { keys }, text: renderTable(['ID', 'NAMESPACE', 'SCOPES', 'STATE', 'CREATED', 'NAME'], rows) }
  },
}

const revoke: Command = {
  words: ['keys', 'revoke'],
  operands: ['<id>'],
  summary: 'revoke an API key: every server refuses it within 5 seconds',
  options: {},
  async run({ args, client }) {
    const [id] = args.expectOperands(['<id>'])
    const key = await client().admin.revokeApiKey(id!)
    return { json: key, text: `revoked API key ${key.id} (${key.name})` }
  },
}

export const keyCommands: readonly Command[] = [create, list, revoke]
