/** One sample of a Prometheus text exposition: `name{label="value",...} value`. */
export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** A scrape of a metrics endpoint, parsed. */
export class Scrape {
  constructor(
    readonly samples: readonly Sample[],
    readonly contentType: string,
  ) {}

  /**
   * The value of the one sample named `name` whose labels include `labels`
   * (other labels may differ); undefined when there is none. Throws when
   * several match, so a test cannot read the wrong series by accident.
   */
  value(name: string, labels: Record<string, string> = {}): number | undefined {
    const matches = this.samples.filter(
      (sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
    )
    if (matches.length > 1) throw new Error(`${matches.length} samples of ${name} match ${JSON.stringify(labels)}`)
    return matches[0]?.value
  }
}

/** GETs `/metrics` from a local metrics port and parses the text format. */
export async function scrapeMetrics(port: number, token?: string): Promise<Scrape> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  })
  if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}: ${await response.text()}`)
  return new Scrape(parsePrometheusText(await response.text()), response.headers.get('content-type') ?? '')
}

const sampleLine = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/
const labelPair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

/** Samples of the Prometheus text format (comments and blank lines skipped). */
export function parsePrometheusText(text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = sampleLine.exec(line)
    if (!match) throw new Error(`not a Prometheus sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const [, key, value] of (match[2] ?? '').matchAll(labelPair)) {
      labels[key!] = value!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\')
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) })
  }
  return samples
}
