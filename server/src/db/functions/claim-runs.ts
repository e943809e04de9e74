/**
 * stackshift.claim_runs: the claim. Leases up to p_limit ready runs of the
 * given queues and jobs, and no more than p_max_bytes of them (at least one),
 * and returns them with the memo of their completed steps. This is the one
 * source of the function: migrations install it with CREATE OR REPLACE (see
 * migrations/index.ts); db/queries/claim.ts calls it and sorts what it
 * returns into claim order.
 *
 * Why it has this shape (a drain of 100,000 runs on one connection is the
 * measure; docs/performance.md has the runs):
 * - One ordered scan of the ready index (runs_ready: namespace, queue,
 *   priority DESC, available_at, id, WHERE status = 'queued') per queue, by
 *   LATERAL, reading only the head of each queue; SKIP LOCKED lets concurrent
 *   claimers take disjoint runs without waiting for each other.
 * - The planner cannot see which queue a LATERAL row names, and statistics
 *   taken while the claimed jobs were rare make them look absent; it may then
 *   prefer scanning the whole table to reading the head of the index, which
 *   for this statement is never cheaper. The function forbids sequential and
 *   bitmap scans for its own statement (test/claim-plan.test.ts shows the
 *   plan it gets without them).
 * - Ids are matched with = ANY(ARRAY(...)), so the update probes the primary
 *   key whatever the row estimates.
 * - PL/pgSQL keeps the statement's plan for the session; a SQL function with
 *   SET clauses would parse and plan it on every call.
 * - One token for the runs of one claim: fencing checks (run id, token) pairs,
 *   so it is still unique to each attempt of each run.
 * - The rows come back straight from the UPDATE, unsorted, with their
 *   priority; the caller sorts them. Sorting here meant keeping the updated
 *   rows in a CTE and reading them back: a claim cost PostgreSQL 22.6-27.3 µs
 *   a run that way against 19.3-25.0 µs without (four runs of each,
 *   alternating); 500 runs sort in JavaScript in a tenth of a millisecond.
 * - The memo is read only for runs that executed before (is_resumed: a retry,
 *   a resumed sleep or wait, a hand-back); a first attempt has no steps.
 * - Sized by bytes: a run's size is its payload_bytes (the JSON text as
 *   received, kept by the enqueue so no payload is read to size it; runs
 *   stored before migration 0008 have none and their payload is measured),
 *   plus the size of its memo when it executed before. The runs picked are
 *   leased in the order they were picked while the running sum of their sizes
 *   stays within p_max_bytes, and always the first, so a run larger than the
 *   budget is leased alone. Picking (and locking) is as before: the rows
 *   picked beyond the budget stay locked until the statement ends, unleased.
 *   is_cut says the budget, not the count, ended the claim: more runs may be
 *   ready.
 * - Two statements, pick then lease: the picked ids come back as an array
 *   with their sizes and the total, and only when the total is over the
 *   budget does a loop keep the prefix that fits. The count-only claim was
 *   one statement; this one cost 0.3-0.6 µs a run more (medians of 500-run
 *   claims, six drains of 150,000 small runs alternating with the old
 *   function: 18.4-20.6 µs against 17.4-20.1), as did one statement with a
 *   window function for the running sum.
 * - A run a schedule fired comes with its schedule and tick (migration 0011),
 *   which the handler sees; other runs have neither.
 */
/**
 * What both claims (this one and claim_flow_runs) return of each run they
 * lease, read from the UPDATE that leases it (`r`, with the claim's
 * `v_lease_token`), and its column types: db/queries/claim.ts reads them by
 * name. The memo is read only for runs that executed before (is_resumed).
 */
export const leasedRunColumnTypes = `run_id text, run_queue text, run_job text, payload_json text, run_attempt integer,
  run_max_attempts integer, run_priority smallint, run_lease_token text, lease_expires_ms float8, available_ms float8, memo json,
  trace_context jsonb, run_schedule_id text, scheduled_ms float8`

export const leasedRunColumns = `r.id::text, r.queue, r.job, r.payload::text, r.attempt, r.max_attempts, r.priority, v_lease_token::text,
    (extract(epoch FROM r.lease_expires_at) * 1000)::float8,
    (extract(epoch FROM r.available_at) * 1000)::float8,
    CASE WHEN r.is_resumed THEN
      (SELECT json_agg(json_build_array(s.step_id, s.result::text))
       FROM stackshift.steps AS s WHERE s.run_id = r.id AND s.status = 'completed')
    END,
    r.trace_context,
    r.schedule_id,
    (extract(epoch FROM r.scheduled_at) * 1000)::float8`

export const claimRunsFunction = `
CREATE OR REPLACE FUNCTION stackshift.claim_runs(
  p_namespace text, p_queues text[], p_jobs text[], p_limit integer, p_lease_ms bigint, p_worker_id text, p_max_bytes bigint
) RETURNS TABLE (
  ${leasedRunColumnTypes},
  is_cut boolean
)
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
DECLARE
  v_lease_token uuid := gen_random_uuid();
  v_ids uuid[];
  v_sizes float8[];
  v_total float8;
  v_picked integer;
  v_taken integer := 1;
  v_bytes float8;
BEGIN
  SELECT array_agg(picked.id), array_agg(picked.bytes), sum(picked.bytes), count(*)
  INTO v_ids, v_sizes, v_total, v_picked
  FROM (
    SELECT picked.id, picked.bytes
    FROM unnest(p_queues) AS q(name)
    CROSS JOIN LATERAL (
      SELECT candidate.id,
        coalesce(candidate.payload_bytes, octet_length(candidate.payload::text))::float8
          + CASE WHEN candidate.is_resumed THEN coalesce(
              (SELECT sum(octet_length(s.result::text)) FROM stackshift.steps AS s
               WHERE s.run_id = candidate.id AND s.status = 'completed'), 0)::float8
            ELSE 0 END AS bytes
      FROM stackshift.runs AS candidate
      WHERE candidate.namespace = p_namespace AND candidate.queue = q.name AND candidate.status = 'queued'
        AND candidate.job = ANY(p_jobs)
      ORDER BY candidate.priority DESC, candidate.available_at, candidate.id
      LIMIT p_limit
      FOR UPDATE SKIP LOCKED
    ) AS picked
    LIMIT p_limit
  ) AS picked;
  IF v_picked = 0 THEN
    RETURN;
  END IF;
  IF v_total > p_max_bytes THEN
    v_bytes := v_sizes[1];
    WHILE v_taken < v_picked AND v_bytes + v_sizes[v_taken + 1] <= p_max_bytes LOOP
      v_taken := v_taken + 1;
      v_bytes := v_bytes + v_sizes[v_taken];
    END LOOP;
    v_ids := v_ids[1:v_taken];
  END IF;
  RETURN QUERY
  UPDATE stackshift.runs AS r
  SET status = 'running', attempt = r.attempt + 1, lease_token = v_lease_token,
      lease_expires_at = now() + p_lease_ms * interval '1 millisecond', started_at = now(), worker_id = p_worker_id
  WHERE r.id = ANY(v_ids)
  RETURNING ${leasedRunColumns},
    v_picked > cardinality(v_ids);
END
$$;
`
