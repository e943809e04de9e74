import { InvalidArgumentError, ResourceExhaustedError } from './errors.js'

/**
 * Checks JSON text received from a client before it reaches the database:
 * size first (so an oversized value is never parsed), then syntax, then what
 * PostgreSQL's jsonb cannot hold. Returns the text to store ("null" for empty).
 */
export function checkJsonText(field: string, text: string, maxBytes: number): string {
  return checkJsonValue(field, text, maxBytes).text
}

/** checkJsonText, with the size the value counts as: bytes of UTF-8. */
export function checkJsonValue(field: string, text: string, maxBytes: number): { text: string; bytes: number } {
  if (text.length === 0) return { text: 'null', bytes: 4 }
  const bytes = Buffer.byteLength(text, 'utf8')
  if (bytes > maxBytes) {
    throw new ResourceExhaustedError(field, `is ${bytes} bytes of JSON; the limit is ${maxBytes} bytes`)
  }
  try {
    JSON.parse(text)
  } catch (error) {
    throw new InvalidArgumentError(field, `is not valid JSON (${(error as Error).message})`)
  }
  // jsonb rejects the NUL character in strings; refuse it here with a clear message.
  if (text.includes('\\u0000')) {
    throw new InvalidArgumentError(field, 'contains \\u0000, which cannot be stored')
  }
  return { text, bytes }
}
