import { InvalidArgumentError } from './errors.js'

/**
 * JSON at the boundary. Payloads and results travel as JSON text; `undefined`
 * travels as "absent" so it comes back as undefined, and null, 0, "" and false
 * come back as they went in.
 */

/** JSON text for `value`, or undefined for undefined. Throws InvalidArgumentError naming `what` if it cannot be serialized. */
/** JSON.stringify, typed as it behaves: undefined for undefined, functions and symbols. */
export function jsonText(value: unknown): string | undefined {
  return JSON.stringify(value)
}

export function encodeJson(value: unknown, what: string): string | undefined {
  if (value === undefined) return undefined
  let text: string | undefined
  try {
    text = jsonText(value)
  } catch (error) {
    throw new InvalidArgumentError(`${what} is not JSON-serializable: ${(error as Error).message}`)
  }
  if (text === undefined) throw new InvalidArgumentError(`${what} is not JSON-serializable (${typeof value})`)
  return text
}

/** The value of JSON text; undefined for absent text. */
export function decodeJson(text: string | undefined): unknown {
  return text === undefined ? undefined : JSON.parse(text)
}
