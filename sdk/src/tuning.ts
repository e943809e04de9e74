import { AsyncResource } from 'node:async_hooks'
import { deprecate } from 'node:util'

/*
 * Tuning the SDK offers and never applies by itself: what is here changes
 * the application's whole process, so the application opts in.
 *
 * Node's HTTP/2 client calls `AsyncResource.prototype.bind` once for every
 * request it starts, so once for every gRPC call this SDK makes. On Node 20
 * and 22 that method gives each bound function an `asyncResource` accessor
 * (deprecated, DEP0172) made of two new closures. The closures share a
 * context with the bound target, which holds the HTTP/2 stream, and V8 keeps
 * the accessor pair that references them in the old generation. A
 * young-generation collection treats old-generation references as live, so
 * every request's whole object graph (stream, call, buffers) survives it and
 * is promoted, until a full collection frees it. Measured with gRPC unary
 * calls at 350/s on Node 22: 20% of what a call allocates is promoted, each
 * young-generation pause takes 2–9 ms and full collections follow; with the
 * replacement below, 1.4% is promoted, pauses take 0.4–1.3 ms and no full
 * collection runs. Per-call closures that do not share the target's context
 * promote 2%: the shared context is what carries the request.
 *
 * The replacement behaves like Node's: the bound function runs `fn` in the
 * resource's async scope, has `fn`'s length, and has the same deprecated
 * `asyncResource` accessor, whose getter and setter are shared by every bound
 * function (the resource is looked up by function), so no accessor pair
 * leads from the old generation to a request.
 *
 * On Node 24 and later it is not installed: there a request's objects are
 * promoted with or without it (through another reference inside Node's HTTP/2
 * client), so it would change Node for no measured gain.
 */

const deprecationMessage = 'The asyncResource property on bound functions is deprecated'
const resourceOfBound = new WeakMap<object, AsyncResource>()

// Made once and shared: Node's own deprecate, so --no-deprecation and the once-per-code warning apply as before.
const asyncResourceAccessor: PropertyDescriptor = {
  configurable: true,
  enumerable: true,
  get: deprecate(
    function (this: object) {
      return resourceOfBound.get(this)
    },
    deprecationMessage,
    'DEP0172',
  ),
  set: deprecate(
    function (this: object, resource: AsyncResource) {
      resourceOfBound.set(this, resource)
    },
    deprecationMessage,
    'DEP0172',
  ),
}

type Callable = (...args: unknown[]) => unknown

type BindMethod = (this: AsyncResource, fn: unknown, thisArg?: unknown) => Callable

/** `AsyncResource.prototype.bind` as it is now, read as a plain function (it is called with a resource as `this`). */
function currentBind(): BindMethod {
  return Object.getOwnPropertyDescriptor(AsyncResource.prototype, 'bind')?.value as BindMethod
}

const nodeBind = currentBind()

function bind(this: AsyncResource, fn: Callable, thisArg?: unknown): Callable {
  // Node's own method throws its own error for a non-function.
  if (typeof fn !== 'function') return nodeBind.call(this, fn, thisArg)
  return bindToResource(this, fn, thisArg)
}

function bindToResource(resource: AsyncResource, fn: Callable, thisArg: unknown): Callable {
  let bound: Callable
  // Assigned, not chosen in one expression, so the first one is named "bound" as Node's is.
  if (thisArg === undefined)
    bound = function (this: unknown, ...args: unknown[]) {
      return resource.runInAsyncScope(fn, this, ...args)
    }
  else bound = resource.runInAsyncScope.bind(resource, fn, thisArg)
  Object.defineProperty(bound, 'length', { configurable: true, enumerable: false, value: fn.length, writable: false })
  resourceOfBound.set(bound, resource)
  Object.defineProperty(bound, 'asyncResource', asyncResourceAccessor)
  return bound
}

/**
 * Whether the process still has Node's own method, and it is the one
 * described above.
 *
 * Read from the method's source text because nothing else tells Node's own
 * method from another library's wrapper around it: Node's library is plain
 * JavaScript, so its method is not native code, and a wrapper (an APM agent's,
 * say) may keep its name and length. A wrapper must be left alone, since
 * replacing it would silently undo what that library does; only Node's own
 * method names its deprecation code, DEP0172, in its body. The release is
 * checked too: from Node 24 the replacement measured no gain.
 */
function isNodesPerCallAccessorBind(): boolean {
  if (Number(process.versions.node.split('.')[0]) >= 24) return false
  return Function.prototype.toString.call(currentBind()).includes("'DEP0172'")
}

/**
 * Opt-in tuning: replaces `AsyncResource.prototype.bind` for the whole
 * process, on Node releases (20 and 22) whose own implementation makes every
 * HTTP/2 request, so every gRPC call, survive young-generation garbage
 * collections. Measured with gRPC unary calls at 350/s on Node 22: 1.4% of
 * what a call allocates promoted instead of 20%, young-generation pauses of
 * 0.4–1.3 ms instead of 2–9 ms, and no full collection. Bound functions behave
 * as with Node's own method.
 *
 * The SDK never calls it. Call it once, early, in a process that makes many
 * gRPC calls (a StackShift client or worker, or any other gRPC client); later
 * calls do nothing. It leaves Node's method in place on Node 24 and later, and
 * leaves alone a wrapper another library has put in its place. Returns
 * whether the replacement is in place.
 */
export function replaceAsyncResourceBind(): boolean {
  if (currentBind() === bind) return true
  if (!isNodesPerCallAccessorBind()) return false
  AsyncResource.prototype.bind = bind as AsyncResource['bind']
  return true
}
