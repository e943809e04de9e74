/** How a batch statement reaches its runs. */

/**
 * The condition that makes a statement find a batch's runs by primary key,
 * for statements that join runs `r` with a batch (a MATERIALIZED CTE with the
 * run ids in `column`). Joined on the ids alone, the planner estimates the
 * match from the lease columns' statistics, which are mostly NULL (few runs
 * hold a lease at any time): it expects one run and, on a table of up to a
 * few hundred thousand runs, scans it whole and compares every run it keeps
 * with every batch item. A completion of 500 runs took 136 ms on 100,000 runs
 * instead of 8. An id list the planner cannot see into (a sub-select) is
 * always probed through the primary key, and the batch is then hash-joined.
 */
export function runsOfBatch(batch: string, column = 'id'): string {
  return `r.id = ANY(ARRAY(SELECT ${column} FROM ${batch}))`
}
