import { readFileSync } from 'node:fs'
import { StackShift } from '@stackshift/sdk'
import type { Arguments } from './arguments.js'

/*
 * Where the command connects, and as whom: flags first, then the environment
 * (STACKSHIFT_ADDRESS, STACKSHIFT_API_KEY, STACKSHIFT_NAMESPACE), then defaults.
 */

/** The address used when neither --address nor STACKSHIFT_ADDRESS says one. */
export const defaultAddress = 'localhost:50051'

/** The namespace the command acts in: --namespace, else STACKSHIFT_NAMESPACE, else undefined (the SDK's "default"). */
export function chosenNamespace(args: Arguments, env: NodeJS.ProcessEnv): string | undefined {
  return args.string('namespace') ?? (env.STACKSHIFT_NAMESPACE || undefined)
}

/** A client as the command line and environment describe it. */
export function connect(args: Arguments, env: NodeJS.ProcessEnv): StackShift {
  const caFile = args.string('tls-ca')
  return new StackShift({
    address: args.string('address') ?? (env.STACKSHIFT_ADDRESS || defaultAddress),
    namespace: chosenNamespace(args, env),
    apiKey: args.string('api-key') ?? env.STACKSHIFT_API_KEY,
    tls: caFile !== undefined ? { ca: readFileSync(caFile) } : args.flag('tls') ? true : undefined,
  })
}
