import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** A certificate and its private key, as PEM bytes and as the files they were written to. */
export interface IssuedCertificate {
  /** The common name, which tests use to tell certificates apart. */
  name: string
  cert: Buffer
  key: Buffer
  certFile: string
  keyFile: string
}

/**
 * Throwaway certificate authorities and certificates for tests, made with the
 * `openssl` command line (Debian: `apt-get install openssl`) in a temporary
 * directory: P-256 keys, valid for two days.
 */
export class TestCertificates {
  private serialNumber = 0x1000

  private constructor(readonly dir: string) {}

  static async create(): Promise<TestCertificates> {
    try {
      await run('openssl', ['version'])
    } catch (error) {
      throw new Error('the TLS tests make their certificates with openssl, which is not installed (Debian: apt-get install openssl)', {
        cause: error,
      })
    }
    return new TestCertificates(await mkdtemp(join(tmpdir(), 'stackshift-test-tls-')))
  }

  /** A self-signed certificate authority. */
  async authority(name: string): Promise<IssuedCertificate> {
    const { certFile, keyFile } = this.paths(name)
    await openssl(
      ['req', '-x509', ...newKey(keyFile), '-out', certFile, '-subj', `/CN=${name}`, '-days', '2'],
      ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    )
    return this.read(name)
  }

  /** A certificate signed by `authority`: for a server on 127.0.0.1 and localhost, or for a client. */
  async issue(authority: IssuedCertificate, name: string, usage: 'server' | 'client'): Promise<IssuedCertificate> {
    const { certFile, keyFile } = this.paths(name)
    const requestFile = join(this.dir, `${name}.csr`)
    const extensionsFile = join(this.dir, `${name}.ext`)
    const extensions =
      usage === 'server' ? ['subjectAltName=IP:127.0.0.1,DNS:localhost', 'extendedKeyUsage=serverAuth'] : ['extendedKeyUsage=clientAuth']
    await writeFile(extensionsFile, ['basicConstraints=CA:FALSE', ...extensions].join('\n') + '\n')
    await openssl(['req', '-new', ...newKey(keyFile), '-out', requestFile, '-subj', `/CN=${name}`])
    await openssl([
      'x509',
      '-req',
      '-in',
      requestFile,
      '-CA',
      authority.certFile,
      '-CAkey',
      authority.keyFile,
      '-set_serial',
      String(++this.serialNumber),
      '-days',
      '2',
      '-extfile',
      extensionsFile,
      '-out',
      certFile,
    ])
    return this.read(name)
  }

  /** Deletes every file made. */
  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true })
  }

  private paths(name: string) {
    return { certFile: join(this.dir, `${name}.crt`), keyFile: join(this.dir, `${name}.key`) }
  }

  private async read(name: string): Promise<IssuedCertificate> {
    const { certFile, keyFile } = this.paths(name)
    const [cert, key] = await Promise.all([readFile(certFile), readFile(keyFile)])
    return { name, cert, key, certFile, keyFile }
  }
}

const newKey = (keyFile: string) => ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile]

async function openssl(...args: string[][]): Promise<void> {
  try {
    await run('openssl', args.flat())
  } catch (error) {
    const { stderr } = error as { stderr?: string }
    throw new Error(`openssl ${args.flat().join(' ')} failed: ${stderr ?? String(error)}`, { cause: error })
  }
}
