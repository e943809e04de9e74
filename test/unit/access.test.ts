import { expect, it } from 'vitest'
import { anonymousPrincipal, authorize, isLoopbackHost, resolveAuthMode } from '../../server/src/core/access.js'
import { PermissionDeniedError } from '../../server/src/core/errors.js'

it('auto requires keys exactly when the server listens beyond loopback', () => {
  for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]']) {
    expect(isLoopbackHost(host)).toBe(true)
    expect(resolveAuthMode('auto', host)).toBe('off')
  }
  for (const host of ['0.0.0.0', '::', '10.0.0.5', 'stackshift.internal', '128.0.0.1']) {
    expect(isLoopbackHost(host)).toBe(false)
    expect(resolveAuthMode('auto', host)).toBe('required')
  }
  expect(resolveAuthMode('off', '0.0.0.0')).toBe('off')
  expect(resolveAuthMode('required', '127.0.0.1')).toBe('required')
})

it('a principal acts only in its namespace and with its scopes; "*" acts in every namespace', () => {
  const billingReader = { keyId: 'k', namespace: 'billing', scopes: new Set(['read'] as const) }
  expect(() => authorize(billingReader, 'read', 'billing')).not.toThrow()
  expect(() => authorize(billingReader, 'read', undefined)).not.toThrow()
  expect(() => authorize(billingReader, 'enqueue', 'billing')).toThrow(
    new PermissionDeniedError('this API key lacks the "enqueue" scope that this call needs'),
  )
  expect(() => authorize(billingReader, 'read', 'shipping')).toThrow(/namespace "billing", not "shipping"/)
  expect(() => authorize(anonymousPrincipal, 'admin', 'anything')).not.toThrow()
})
