import { readyChannel } from '../channels.js'

/**
 * stackshift.resume_parent: the trigger function of runs_resume_parent
 * (migration 0012), called when a child run (step.invoke) finishes, in the
 * transaction that ends it, whichever path that is. It records the child's
 * outcome as the result of the parent's invoke step, if that step still
 * waits (it does not once the parent timed out waiting or was cancelled),
 * and queues the parent once none of its steps waits any more, announcing it
 * on the ready channel (origin '': every server, this one included, wakes
 * its workers).
 *
 * Lock order. The parent row is locked first, FOR NO KEY UPDATE: siblings
 * finishing at once in other transactions then take turns, and each
 * statement after the lock reads a fresh snapshot (READ COMMITTED, volatile
 * function), so the last to finish sees every other sibling's step
 * completed and queues the parent; without the lock each could see the
 * other's step still waiting and neither would queue it. A child is locked
 * before its parent here (the ending statement holds the child's row): the
 * cancel cascade locks in the same order, descendants before the run
 * cancelled (operations/cancellation.ts), and so never waits for a parent
 * while holding a child's lock the way this function does. Two completion
 * batches that each end children of the same two parents, in opposite
 * orders, can still deadlock; PostgreSQL then aborts one, and its writers
 * retry it (ABORTED).
 *
 * The outcome, as the memo hands it to the parent (proto: STEP_KIND_INVOKE):
 * {"childRunId", "status", "result"} when completed ("result" absent when the
 * child returned nothing), {"childRunId", "status", "error": {name, message}}
 * when failed or cancelled.
 */
export const resumeParentFunctionSql = `
CREATE OR REPLACE FUNCTION stackshift.resume_parent() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  parent record;
BEGIN
  SELECT r.status, r.namespace, r.queue INTO parent FROM stackshift.runs AS r WHERE r.id = NEW.parent_run_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  UPDATE stackshift.steps AS s
  SET status = 'completed', finished_at = now(),
      result = jsonb_build_object('childRunId', NEW.id::text, 'status', NEW.status::text) || CASE
        WHEN NEW.status = 'completed' THEN CASE WHEN NEW.result IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('result', NEW.result) END
        ELSE jsonb_build_object('error', jsonb_build_object(
          'name', coalesce(NEW.error ->> 'name', 'Error'), 'message', coalesce(NEW.error ->> 'message', '')))
      END
  WHERE s.run_id = NEW.parent_run_id AND s.step_id = NEW.parent_step_id AND s.status = 'waiting' AND s.kind = 'invoke';
  IF NOT FOUND OR parent.status <> 'waiting' THEN
    RETURN NULL;
  END IF;
  IF EXISTS (SELECT 1 FROM stackshift.steps AS s WHERE s.run_id = NEW.parent_run_id AND s.status = 'waiting') THEN
    RETURN NULL;
  END IF;
  UPDATE stackshift.runs SET status = 'queued', available_at = now() WHERE id = NEW.parent_run_id;
  PERFORM pg_notify('${readyChannel}', json_build_object('origin', '', 'namespace', parent.namespace, 'queues', json_build_array(parent.queue))::text);
  RETURN NULL;
END
$$;
`
