/*
 * Values as a table cell shows them, and the document --json prints.
 */

/** An instant to the second, in UTC: ISO 8601, so it can be pasted back into --created-after. "-" when absent. */
export function formatInstant(date: Date | undefined): string {
  return date === undefined ? '-' : date.toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/** A JSON value on one line, cut to `maxLength` characters. "-" when absent. */
export function formatJsonBrief(value: unknown, maxLength = 48): string {
  if (value === undefined) return '-'
  const text = JSON.stringify(value)
  return text.length <= maxLength ? text : `${text.slice(0, maxLength - 1)}…`
}

/**
 * The --json document: pretty-printed, dates as ISO 8601, and absent (undefined)
 * fields as null, so that every document of a kind has the same keys.
 */
export function toJsonDocument(value: unknown): string {
  return JSON.stringify(value, (_key, field: unknown) => (field === undefined ? null : field), 2)
}
