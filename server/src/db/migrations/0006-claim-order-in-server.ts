/**
 * This migration once replaced claim_runs with a version that leaves the sort
 * into claim order to the server. The function now has one source,
 * db/functions/claim-runs.ts, installed by 0007; this step stays, empty, so
 * databases that ran it keep a history that matches the list.
 */
export function up(): Promise<void> {
  return Promise.resolve()
}

export function down(): Promise<void> {
  return Promise.resolve()
}
