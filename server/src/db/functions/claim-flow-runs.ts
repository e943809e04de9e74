import { leasedRunColumnTypes, leasedRunColumns } from './claim-runs.js'

/**
 * stackshift.claim_flow_runs: the claim for runs under flow control (a job
 * with a concurrency, rate-limit or fairness policy, or any job of a queue
 * with a concurrency limit; see core/flow-policy.ts). Leases up to p_limit
 * ready runs of one queue and one job, within every limit, and returns them
 * like claim_runs (db/functions/claim-runs.ts), in the order they were
 * picked (claim_order), with whether runs were held back by a limit
 * (is_held) and, for a rate limit, when its window next has room
 * (opens_ms). When nothing was leased it returns one row with no run_id,
 * carrying just those. Runs of jobs without policies never come here:
 * claim_runs, unchanged, takes them (the dispatcher splits a worker's jobs;
 * operations/claim.ts).
 *
 * The invariants, and what protects each:
 * - No limit is exceeded, whatever the number of servers: the claim counts
 *   what it limits and takes runs in one transaction holding an exclusive
 *   advisory lock on the job (and on the queue, when the queue has a limit).
 *   In READ COMMITTED a statement's snapshot predates a lock taken inside it,
 *   so the lock is its own statement and the counting statements come after
 *   it: they see every claim that committed before the lock was granted.
 *   Claims of one job are serialized; they are short (a few hundred µs),
 *   and a worker's claims are one at a time anyway (dispatch/dispatcher.ts).
 * - A slot is held only while a run runs: concurrency is counted from the
 *   runs themselves (runs_flow_running: status 'running', lease live on the
 *   database clock). A sleeping, waiting, finished, cancelled or handed-back
 *   run is not 'running', so every exit path frees its slot at once without
 *   remembering to; a run whose lease expired stops counting at that instant,
 *   before the reaper ends its attempt. There is no counter to drift.
 * - No window of the rate limit's period holds more than its limit of
 *   starts: each key (or the job, when the rate limit has no key) keeps the
 *   instants of its last `limit` starts (flow_rate_windows), the claim takes
 *   at most limit - (starts in (now - period, now]) and records its own.
 *   Instants are clock_timestamp() read after the lock, so they increase
 *   from claim to claim, and are the runs' started_at.
 * - Keys are served round robin: each claim reads the keys in key order from
 *   where the last claim stopped (flow_cursors), wrapping around, and takes
 *   one run per key per round: with 1,000 runs of key A queued before 10 of
 *   key B, B's runs are among the first 20 started. (A first version kept
 *   when each key was last served and read the keys in that order; every
 *   claim then rewrote hundreds of key rows and their index entries. With it
 *   W5 drained at 45-47% of W1; the cursor and generic plans (below) brought
 *   it to 71-88%.)
 * - Keys with no ready runs are not scanned: flow_keys holds a key only
 *   while it may have ready runs. The trigger flow_key_ready adds a key when
 *   a run of it becomes ready (insert, promotion, retry, hand-back, resume),
 *   holding the job's lock in share mode; this claim forgets a key it found
 *   empty while holding the lock exclusively, so the two never cross: a run
 *   made ready while the claim runs commits after it, and adds its key back.
 *
 * - The running runs of every key are counted in one pass over the job's
 *   running runs (into a jsonb map the key loop reads), not by a count per
 *   key. Per key, whenever the planner read the count through runs_leased
 *   (every running run) instead of runs_flow_running, each of ~500 keys read
 *   all ~200 running runs: 92 ms for the key loop of a claim against 3.4 ms,
 *   W5 at 16-17% of W1's rate in about one drain of four (which statistics
 *   led there was not pinned down; custom plans did it on unanalysed tables,
 *   and generic plans now and then). One pass reads the running runs once,
 *   whichever index serves it: its cost is the job's running runs (bounded by
 *   the slots of its workers), not keys × running.
 * - Generic plans (plan_cache_mode): the custom plans made for the first
 *   calls of each session on a table loaded in bulk and not yet analysed
 *   were the worst of both; the generic plan keeps one shape per session.
 *
 * Cost: reading the policies and the counts is a few index probes; the
 * keys are read in round order only until p_limit keys with room are found
 * (keys at their limit are read and skipped; the running runs of the job
 * are counted once); runs are read
 * per key, at most ceil(p_limit / keys) from each, through runs_flow_ready;
 * the claim writes the leased runs and one cursor row. docs/performance.md
 * ("Flow control") has the plans and the drain rates measured.
 *
 * (Knex reads "?" in raw SQL as a placeholder: the jsonb tests are written
 * with -> and IS NOT NULL.)
 */
export const claimFlowRunsFunction = `
CREATE OR REPLACE FUNCTION stackshift.flow_lock_key(p_kind text, p_namespace text, p_name text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- Names cannot hold control characters: chr(31) separates the parts unambiguously.
AS $$ SELECT hashtextextended('stackshift.flow' || chr(31) || p_kind || chr(31) || p_namespace || chr(31) || p_name, 0) $$;

CREATE OR REPLACE FUNCTION stackshift.claim_flow_runs(
  p_namespace text, p_queue text, p_job text, p_limit integer, p_lease_ms bigint, p_worker_id text, p_max_bytes bigint
) RETURNS TABLE (
  ${leasedRunColumnTypes},
  is_cut boolean, claim_order bigint, is_held boolean, opens_ms float8
)
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_lease_token uuid := gen_random_uuid();
  v_now timestamptz;
  v_policies jsonb;
  v_queue_limit integer;
  v_key_limit integer;
  v_key_running jsonb;
  v_job_limit integer;
  v_rate_limit integer;
  v_rate_period interval;
  v_is_rate_keyed boolean := false;
  v_room integer := p_limit;
  v_used integer;
  v_is_held boolean := false;
  v_opens timestamptz;
  v_key text;
  v_key_room integer;
  v_key_opens timestamptz;
  v_cursor text;
  v_last_scanned text;
  v_empty_keys text[];
  v_keys text[] := '{}';
  v_key_rooms integer[] := '{}';
  v_share integer;
  v_ids uuid[];
  v_sizes float8[];
  v_run_keys text[];
  v_total float8;
  v_picked integer;
  v_is_cut boolean;
  v_taken integer := 1;
  v_bytes float8;
BEGIN
  SELECT qp.concurrency INTO v_queue_limit FROM stackshift.queue_policies AS qp
  WHERE qp.namespace = p_namespace AND qp.queue = p_queue AND qp.concurrency > 0;
  IF v_queue_limit IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(stackshift.flow_lock_key('queue', p_namespace, p_queue));
  END IF;
  PERFORM pg_advisory_xact_lock(stackshift.flow_lock_key('job', p_namespace, p_job));
  v_now := clock_timestamp();

  SELECT jp.policies INTO v_policies FROM stackshift.job_policies AS jp WHERE jp.namespace = p_namespace AND jp.job = p_job;
  IF v_policies->'concurrency' IS NOT NULL THEN
    IF v_policies->'concurrency'->'keyPath' IS NOT NULL THEN
      v_key_limit := (v_policies->'concurrency'->>'limit')::integer;
    ELSE
      v_job_limit := (v_policies->'concurrency'->>'limit')::integer;
    END IF;
  END IF;
  IF v_policies->'rateLimit' IS NOT NULL THEN
    v_rate_limit := (v_policies->'rateLimit'->>'limit')::integer;
    v_rate_period := (v_policies->'rateLimit'->>'periodMs')::bigint * interval '1 millisecond';
    v_is_rate_keyed := v_policies->'rateLimit'->'keyPath' IS NOT NULL;
  END IF;

  IF v_queue_limit IS NOT NULL THEN
    SELECT count(*)::integer INTO v_used FROM stackshift.runs AS r
    WHERE r.status = 'running' AND r.namespace = p_namespace AND r.queue = p_queue AND r.lease_expires_at > v_now;
    v_is_held := v_used >= v_queue_limit;
    v_room := least(v_room, v_queue_limit - v_used);
  END IF;
  IF v_job_limit IS NOT NULL THEN
    SELECT count(*)::integer INTO v_used FROM stackshift.runs AS r
    WHERE r.status = 'running' AND r.namespace = p_namespace AND r.job = p_job AND r.concurrency_key IS NOT NULL
      AND r.lease_expires_at > v_now;
    v_is_held := v_is_held OR v_used >= v_job_limit;
    v_room := least(v_room, v_job_limit - v_used);
  END IF;
  IF v_rate_limit IS NOT NULL AND NOT v_is_rate_keyed THEN
    SELECT count(*)::integer, (array_agg(s ORDER BY s DESC))[v_rate_limit] + v_rate_period INTO v_used, v_opens
    FROM stackshift.flow_rate_windows AS w, unnest(w.starts) AS s
    WHERE w.namespace = p_namespace AND w.job = p_job AND w.rate_key = '' AND s > v_now - v_rate_period;
    IF v_used >= v_rate_limit THEN
      v_is_held := true;
    ELSE
      v_opens := NULL;
    END IF;
    v_room := least(v_room, v_rate_limit - v_used);
  END IF;

  IF v_room > 0 THEN
    -- Keys with ready runs in service order, and the room each has, until v_room keys with room.
    -- The running runs of each key, counted in one pass over the job's running runs (see above).
    IF v_key_limit IS NOT NULL THEN
      SELECT coalesce(jsonb_object_agg(g.concurrency_key, g.n), '{}'::jsonb) INTO v_key_running
      FROM (
        SELECT r.concurrency_key, count(*) AS n FROM stackshift.runs AS r
        WHERE r.status = 'running' AND r.namespace = p_namespace AND r.job = p_job AND r.concurrency_key IS NOT NULL
          AND r.lease_expires_at > v_now
        GROUP BY r.concurrency_key
      ) AS g;
    END IF;
    SELECT c.last_key INTO v_cursor FROM stackshift.flow_cursors AS c
    WHERE c.namespace = p_namespace AND c.queue = p_queue AND c.job = p_job;
    v_cursor := coalesce(v_cursor, '');
    FOR v_key, v_key_room, v_key_opens IN
      SELECT fk.concurrency_key,
        least(
          coalesce(v_key_limit - coalesce((v_key_running ->> fk.concurrency_key)::integer, 0), v_room),
          CASE WHEN v_is_rate_keyed THEN v_rate_limit - rw.used ELSE v_room END),
        rw.opens
      FROM (
        -- The keys after the cursor, then from the first to the cursor: a round. Each branch is read
        -- in key order from flow_keys' primary key and Append reads them one after the other, so the
        -- loop stops reading where it exits; an ORDER BY over both would sort every key first.
        (SELECT k.concurrency_key FROM stackshift.flow_keys AS k
         WHERE k.namespace = p_namespace AND k.queue = p_queue AND k.job = p_job AND k.concurrency_key > v_cursor
         ORDER BY k.concurrency_key)
        UNION ALL
        (SELECT k.concurrency_key FROM stackshift.flow_keys AS k
         WHERE k.namespace = p_namespace AND k.queue = p_queue AND k.job = p_job AND k.concurrency_key <= v_cursor
         ORDER BY k.concurrency_key)
      ) AS fk
      LEFT JOIN LATERAL (
        SELECT count(*)::integer AS used, (array_agg(s ORDER BY s DESC))[v_rate_limit] + v_rate_period AS opens
        FROM stackshift.flow_rate_windows AS w, unnest(w.starts) AS s
        WHERE v_is_rate_keyed AND w.namespace = p_namespace AND w.job = p_job AND w.rate_key = fk.concurrency_key
          AND s > v_now - v_rate_period
      ) AS rw ON true
    LOOP
      v_last_scanned := v_key;
      IF v_key_room > 0 THEN
        v_keys := v_keys || v_key;
        v_key_rooms := v_key_rooms || v_key_room;
        EXIT WHEN cardinality(v_keys) >= v_room;
      ELSE
        v_is_held := true;
        v_opens := least(v_opens, v_key_opens);
      END IF;
    END LOOP;
  END IF;

  IF cardinality(v_keys) = 0 THEN
    RETURN QUERY SELECT NULL::text, NULL::text, NULL::text, NULL::text, NULL::integer, NULL::integer, NULL::smallint, NULL::text,
      NULL::float8, NULL::float8, NULL::json, NULL::jsonb, NULL::text, NULL::float8, false, NULL::bigint, v_is_held, (extract(epoch FROM v_opens) * 1000)::float8;
    RETURN;
  END IF;

  -- One run per key per round: at most v_share from each key, then the first v_room by (round, key order).
  v_share := ceil(v_room::numeric / cardinality(v_keys))::integer;
  SELECT array_agg(p.id ORDER BY p.round, p.ord), array_agg(p.bytes ORDER BY p.round, p.ord), array_agg(p.key ORDER BY p.round, p.ord),
    sum(p.bytes), count(*), coalesce(bool_or(p.is_share_full), false)
  INTO v_ids, v_sizes, v_run_keys, v_total, v_picked, v_is_cut
  FROM (
    SELECT c.id, c.bytes, k.key, k.ord, c.round, c.round = v_share AND v_share < k.room AS is_share_full
    FROM unnest(v_keys, v_key_rooms) WITH ORDINALITY AS k(key, room, ord)
    CROSS JOIN LATERAL (
      SELECT candidate.id,
        row_number() OVER (ORDER BY candidate.priority DESC, candidate.available_at, candidate.id) AS round,
        coalesce(candidate.payload_bytes, octet_length(candidate.payload::text))::float8
          + CASE WHEN candidate.is_resumed THEN coalesce(
              (SELECT sum(octet_length(s.result::text)) FROM stackshift.steps AS s
               WHERE s.run_id = candidate.id AND s.status = 'completed'), 0)::float8
            ELSE 0 END AS bytes
      FROM stackshift.runs AS candidate
      WHERE candidate.namespace = p_namespace AND candidate.queue = p_queue AND candidate.job = p_job
        AND candidate.concurrency_key = k.key AND candidate.status = 'queued'
      ORDER BY candidate.priority DESC, candidate.available_at, candidate.id
      LIMIT least(k.room, v_share)
    ) AS c
    ORDER BY c.round, k.ord
    LIMIT v_room
  ) AS p;
  v_picked := coalesce(v_picked, 0);

  -- The next claim goes on from the last key this one looked at.
  INSERT INTO stackshift.flow_cursors AS c (namespace, queue, job, last_key) VALUES (p_namespace, p_queue, p_job, v_last_scanned)
  ON CONFLICT (namespace, queue, job) DO UPDATE SET last_key = EXCLUDED.last_key;

  -- Keys that had room and gave nothing have no ready run in this queue: forget them (see flow_key_ready).
  -- The pick read each of them (at least one run) after the lock, and no run of the job can become
  -- ready until this transaction ends, so nothing is checked again: a NOT EXISTS probe per key cost
  -- 0.5 s at the end of a W5 drain. A set difference, hashed: = ANY over two arrays of hundreds of
  -- keys would compare every pair.
  SELECT array_agg(e.k) INTO v_empty_keys FROM (SELECT unnest(v_keys) AS k EXCEPT SELECT unnest(v_run_keys)) AS e;
  IF v_empty_keys IS NOT NULL THEN
    DELETE FROM stackshift.flow_keys AS fk
    WHERE fk.namespace = p_namespace AND fk.queue = p_queue AND fk.job = p_job AND fk.concurrency_key = ANY(v_empty_keys);
  END IF;

  IF v_picked = 0 THEN
    RETURN QUERY SELECT NULL::text, NULL::text, NULL::text, NULL::text, NULL::integer, NULL::integer, NULL::smallint, NULL::text,
      NULL::float8, NULL::float8, NULL::json, NULL::jsonb, NULL::text, NULL::float8, false, NULL::bigint, v_is_held, (extract(epoch FROM v_opens) * 1000)::float8;
    RETURN;
  END IF;

  -- Sized by bytes as claim_runs is: the prefix that fits, and always the first.
  IF v_total > p_max_bytes THEN
    v_bytes := v_sizes[1];
    WHILE v_taken < v_picked AND v_bytes + v_sizes[v_taken + 1] <= p_max_bytes LOOP
      v_taken := v_taken + 1;
      v_bytes := v_bytes + v_sizes[v_taken];
    END LOOP;
    v_ids := v_ids[1:v_taken];
    v_run_keys := v_run_keys[1:v_taken];
    v_is_cut := true;
  END IF;

  -- The starts enter the rate windows.
  IF v_rate_limit IS NOT NULL THEN
    INSERT INTO stackshift.flow_rate_windows AS w (namespace, job, rate_key, starts)
    SELECT p_namespace, p_job, started.rate_key, array_fill(v_now, ARRAY[started.n])
    FROM (
      SELECT CASE WHEN v_is_rate_keyed THEN k ELSE '' END AS rate_key, count(*)::integer AS n
      FROM unnest(v_run_keys) AS k GROUP BY 1
    ) AS started
    ON CONFLICT (namespace, job, rate_key) DO UPDATE SET starts = ARRAY(
      SELECT s FROM unnest(w.starts || EXCLUDED.starts) AS s
      WHERE s > v_now - v_rate_period ORDER BY s DESC LIMIT v_rate_limit);
  END IF;

  -- A run picked but cancelled since is no longer 'queued' and is not leased.
  RETURN QUERY
  UPDATE stackshift.runs AS r
  SET status = 'running', attempt = r.attempt + 1, lease_token = v_lease_token,
      lease_expires_at = v_now + p_lease_ms * interval '1 millisecond', started_at = v_now, worker_id = p_worker_id
  FROM unnest(v_ids) WITH ORDINALITY AS o(id, ord)
  WHERE r.id = o.id AND r.status = 'queued'
  RETURNING ${leasedRunColumns},
    v_is_cut OR v_picked = v_room,
    o.ord,
    v_is_held,
    (extract(epoch FROM v_opens) * 1000)::float8;
END
$$;
`
