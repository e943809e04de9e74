/*
 * Stands in for @grpc/grpc-js in the browser bundle (scripts/build.mjs aliases it). The
 * generated service modules build a Node.js gRPC client class when they load; the console
 * never makes one (it calls the server through the Connect endpoint), so the stand-in only
 * says so if anything tries.
 */

/** What generated clients would be built from. */
export function Client(): never {
  throw new Error('gRPC clients do not run in the browser; the console calls the Connect endpoint')
}

/** Returns the stand-in for the class generated clients would be instances of. */
export function makeGenericClientConstructor(): typeof Client {
  return Client
}
