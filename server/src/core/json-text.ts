import { InvalidArgumentError, ResourceExhaustedError } from './errors.js'
import { limits } from './limits.js'

/**
 * Checks JSON text received from a client before it reaches the database:
 * size first (so an oversized value is never parsed), then syntax, then what
 * PostgreSQL's jsonb cannot hold. Returns the text to store ("null" for empty).
 */
export function checkJsonText(field: string, text: string, maxBytes: number): string {
  return checkJsonValue(field, text, maxBytes).text
}

/** JSON text that must be an object (checked as checkJsonText); empty means {}. */
export function checkJsonObject(field: string, text: string, maxBytes: number): string {
  if (text === '') return '{}'
  const checked = checkJsonText(field, text, maxBytes)
  if (!/^\s*\{/.test(checked)) throw new InvalidArgumentError(field, 'must be a JSON object')
  return checked
}

/**
 * checkJsonText, with the size the value counts as: bytes of UTF-8, with
 * numbers counted at the length PostgreSQL writes them.
 *
 * What JSON.parse accepts and jsonb refuses, or cannot store well, each
 * refused here as INVALID_ARGUMENT naming the field:
 * - `\u0000` in a string (jsonb's text cannot hold it);
 * - a UTF-16 surrogate escape that is not one half of a pair: a `\uD800`-`\uDBFF`
 *   escape not followed at once by a `\uDC00`-`\uDFFF` one, or the latter alone;
 * - a number beyond PostgreSQL's numeric: 131,072 digits or more before the
 *   decimal point, more than 16,383 after it (counting the exponent: `1e-16384`
 *   has 16,384), or an exponent beyond ±1,073,741,823 (even on zero);
 * - arrays and objects nested deeper than `limits.jsonDepthMax`: PostgreSQL
 *   parses and compares jsonb recursively, and runs out of stack between
 *   10,000 and 20,000 levels.
 * PostgreSQL writes numbers back without exponents: `1e131071` (8 bytes) is
 * 131,072 digits when read. So a number counts as the longer of its text and
 * what PostgreSQL writes, and the size limit applies to that total; otherwise
 * a payload within the limit could come back from a claim hundreds of times
 * larger.
 */
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
  if (isPlainShortJson(text)) return { text, bytes }
  const scan = scanJson(text)
  if (scan.problem !== undefined) throw new InvalidArgumentError(field, scan.problem)
  const storedBytes = bytes + scan.numberGrowth
  if (storedBytes > maxBytes) {
    throw new ResourceExhaustedError(
      field,
      `is ${storedBytes} bytes of JSON with its numbers written out as PostgreSQL stores them (without exponents); the limit is ${maxBytes} bytes`,
    )
  }
  return { text, bytes: storedBytes }
}

/** What PostgreSQL's numeric holds: digits before the decimal point (fewer than), after it (at most), and the exponent it reads. */
const numericIntegerDigitsMax = 131_072
const numericScaleMax = 16_383
const numericExponentMax = 1_073_741_823

/** A digit followed by an exponent's e, inside a number or (harmlessly) a string. */
const possibleExponent = /[0-9][eE]/

/**
 * Whether `text` (valid JSON) needs no scan: it is too short to nest
 * `limits.jsonDepthMax` levels or to hold a number of 16,384 digits, has no
 * \u escape, and no number with an exponent (the only way a shorter number
 * can be out of range or grow when written out). The usual payload or result
 * is, and then costs one search and one regular expression.
 */
function isPlainShortJson(text: string): boolean {
  return text.length <= limits.jsonDepthMax && !text.includes('\\u') && !possibleExponent.test(text)
}

/** The first thing jsonb refuses in `text` (valid JSON), and how much longer its numbers are as PostgreSQL writes them. */
function scanJson(text: string): { problem: string | undefined; numberGrowth: number } {
  const length = text.length
  let depth = 0
  let numberGrowth = 0
  // Inside strings only \u escapes matter. The scan jumps to the closing
  // quote and to the next \u with indexOf; each search starts where the last
  // one ended, so the text is searched once over, whatever its strings.
  let nextUnicodeEscape = -1
  let i = 0
  while (i < length) {
    const c = text.charCodeAt(i)
    if (c === quote) {
      const closing = closingQuote(text, i + 1)
      if (nextUnicodeEscape < i) nextUnicodeEscape = indexOrEnd(text, '\\u', i)
      while (nextUnicodeEscape < closing) {
        const at = nextUnicodeEscape
        // `\\u` is an escaped backslash and a u, not an escape.
        const problem = isEscaped(text, at) ? undefined : unicodeEscapeProblem(text, at)
        if (problem !== undefined) return { problem, numberGrowth }
        nextUnicodeEscape = indexOrEnd(text, '\\u', at + 2)
      }
      i = closing + 1
    } else if (c === openBrace || c === openBracket) {
      if (++depth > limits.jsonDepthMax) {
        return { problem: `nests arrays and objects more than ${limits.jsonDepthMax} levels deep (at character ${i})`, numberGrowth }
      }
      i++
    } else if (c === closeBrace || c === closeBracket) {
      depth--
      i++
    } else if (c === minus || (c >= digit0 && c <= digit9)) {
      i = scanNumber(text, i, numberScan)
      if (numberScan.problem !== undefined) return { problem: numberScan.problem, numberGrowth }
      numberGrowth += numberScan.growth
    } else {
      // Whitespace, ',', ':', and the letters of true, false and null.
      i++
    }
  }
  return { problem: undefined, numberGrowth }
}

/** The closing quote of the string whose first character is at `from`: the next quote that is not escaped. */
function closingQuote(text: string, from: number): number {
  let at = indexOrEnd(text, '"', from)
  while (at < text.length && isEscaped(text, at)) at = indexOrEnd(text, '"', at + 1)
  return at
}

/** Whether the character at `at` follows an odd number of backslashes: it is escaped. */
function isEscaped(text: string, at: number): boolean {
  let backslashes = 0
  while (text.charCodeAt(at - 1 - backslashes) === backslash) backslashes++
  return backslashes % 2 === 1
}

/** Where `search` next occurs in `text` from `from`, or the text's length. */
function indexOrEnd(text: string, search: string, from: number): number {
  const at = text.indexOf(search, from)
  return at === -1 ? text.length : at
}

const quote = 0x22
const backslash = 0x5c
const openBrace = 0x7b
const closeBrace = 0x7d
const openBracket = 0x5b
const closeBracket = 0x5d
const minus = 0x2d
const plus = 0x2b
const dot = 0x2e
const digit0 = 0x30
const digit9 = 0x39
const lowerE = 0x65
const upperE = 0x45
const lowerU = 0x75

/** What jsonb refuses in the \u escape at `at`, if anything. */
function unicodeEscapeProblem(text: string, at: number): string | undefined {
  const unit = Number.parseInt(text.slice(at + 2, at + 6), 16)
  if (unit === 0) return 'contains \\u0000, which cannot be stored'
  if (unit < 0xd800 || unit > 0xdfff) return undefined
  // A high surrogate escape must be followed at once by a low one, which
  // the next search then finds and passes (a low one after a high one).
  if (unit <= 0xdbff && text.charCodeAt(at + 6) === backslash && text.charCodeAt(at + 7) === lowerU) {
    const low = Number.parseInt(text.slice(at + 8, at + 12), 16)
    if (low >= 0xdc00 && low <= 0xdfff) return undefined
  }
  if (unit >= 0xdc00 && isPairedLow(text, at)) return undefined
  return (
    `has an unpaired surrogate ${text.slice(at, at + 6)} at character ${at}, which cannot be stored ` +
    '(a \\uD800-\\uDBFF escape must be followed at once by a \\uDC00-\\uDFFF escape)'
  )
}

/** Whether the low surrogate escape at `at` follows a high surrogate escape at once. */
function isPairedLow(text: string, at: number): boolean {
  if (at < 6 || text.charCodeAt(at - 6) !== backslash || text.charCodeAt(at - 5) !== lowerU || isEscaped(text, at - 6)) return false
  const high = Number.parseInt(text.slice(at - 4, at), 16)
  return high >= 0xd800 && high <= 0xdbff
}

/** What scanNumber found, besides where the number ends: reused, so scanning a number allocates nothing. */
const numberScan = { growth: 0, problem: undefined as string | undefined }

/**
 * Scans a number token at `start` into `result`: whether PostgreSQL's numeric
 * holds it, and how many characters longer PostgreSQL writes it; returns
 * where it ends. numeric_out writes a sign (not for zero), the integer digits
 * ("0" when there are none), and as many decimals as the scale: the
 * fraction's digits less the exponent.
 */
function scanNumber(text: string, start: number, result: typeof numberScan): number {
  let i = start
  const isNegative = text.charCodeAt(i) === minus
  if (isNegative) i++
  const integerStart = i
  while (isDigit(text.charCodeAt(i))) i++
  const integerDigits = i - integerStart
  // JSON allows no leading zeros: a leading 0 is the whole integer part.
  const isIntegerZero = text.charCodeAt(integerStart) === digit0
  let fractionDigits = 0
  /** Zeros between the decimal point and the first other digit. */
  let fractionLeadingZeros = 0
  let isZero = isIntegerZero
  if (text.charCodeAt(i) === dot) {
    i++
    const fractionStart = i
    while (isDigit(text.charCodeAt(i))) i++
    fractionDigits = i - fractionStart
    while (fractionLeadingZeros < fractionDigits && text.charCodeAt(fractionStart + fractionLeadingZeros) === digit0) fractionLeadingZeros++
    if (isIntegerZero) isZero = fractionLeadingZeros === fractionDigits
  }
  let exponent = 0
  let isExponentOutOfRange = false
  const e = text.charCodeAt(i)
  if (e === lowerE || e === upperE) {
    i++
    const sign = text.charCodeAt(i)
    const isExponentNegative = sign === minus
    if (sign === minus || sign === plus) i++
    while (isDigit(text.charCodeAt(i))) {
      if (!isExponentOutOfRange) {
        exponent = exponent * 10 + (text.charCodeAt(i) - digit0)
        if (exponent > numericExponentMax) isExponentOutOfRange = true
      }
      i++
    }
    if (isExponentNegative) exponent = -exponent
  }
  const scale = Math.max(0, fractionDigits - exponent)
  /** Power of ten of the first nonzero digit. */
  const leadingPower = isIntegerZero ? exponent - fractionLeadingZeros - 1 : exponent + integerDigits - 1
  if (isExponentOutOfRange || scale > numericScaleMax || (!isZero && leadingPower >= numericIntegerDigitsMax)) {
    const shown = i - start > 40 ? `${text.slice(start, start + 37)}...` : text.slice(start, i)
    result.growth = 0
    result.problem =
      `has a number PostgreSQL cannot store, ${shown} at character ${start}: ` +
      `at most ${numericIntegerDigitsMax - 1} digits before the decimal point and ${numericScaleMax} after it, exponent included`
    return i
  }
  const written = (isNegative && !isZero ? 1 : 0) + (isZero || leadingPower < 0 ? 1 : leadingPower + 1) + (scale > 0 ? scale + 1 : 0)
  result.growth = Math.max(0, written - (i - start))
  result.problem = undefined
  return i
}

function isDigit(c: number): boolean {
  return c >= digit0 && c <= digit9
}
