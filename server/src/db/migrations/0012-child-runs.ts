import type { Knex } from 'knex'
import { resumeParentFunctionSql } from '../functions/resume-parent.js'

/**
 * Child runs (step.invoke).
 *
 * - A child names its parent and the parent's step (parent_run_id,
 *   parent_step_id). The unique index on the pair is what starts each child
 *   once: a parent that sends the same invoke again (after a crash, a lost
 *   answer, or resumed by a timeout while this child still ran) finds the
 *   child already there. It also lists a run's children, and the cancel
 *   cascade walks it down.
 * - The parent waits on 'invoke' step rows with status 'waiting' (wake_at:
 *   when the parent stops waiting for that child), as sleeps and event waits
 *   do; the run is 'waiting' with available_at = the earliest wake_at.
 * - Every path that ends a run (completion batches, failures, the lease
 *   reaper, cancels, bulk cancels) goes through an UPDATE of status, so a
 *   trigger on that update completes the parent's step and, once none of the
 *   parent's steps waits, queues the parent. Its WHEN clause tests the new
 *   row only: a run without a parent costs one NULL test per status change,
 *   and the function is not called for it.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TYPE stackshift.step_kind ADD VALUE 'invoke';

    ALTER TABLE stackshift.runs
      ADD COLUMN parent_run_id uuid,
      ADD COLUMN parent_step_id text;

    CREATE UNIQUE INDEX runs_by_parent ON stackshift.runs (parent_run_id, parent_step_id) WHERE parent_run_id IS NOT NULL;

    ${resumeParentFunctionSql}

    CREATE TRIGGER runs_resume_parent
      AFTER UPDATE OF status ON stackshift.runs
      FOR EACH ROW
      WHEN (NEW.parent_run_id IS NOT NULL AND NEW.status IN ('completed', 'failed', 'cancelled') AND OLD.status IS DISTINCT FROM NEW.status)
      EXECUTE FUNCTION stackshift.resume_parent();
  `)
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP TRIGGER runs_resume_parent ON stackshift.runs;
    DROP FUNCTION stackshift.resume_parent();
    DROP INDEX stackshift.runs_by_parent;
    ALTER TABLE stackshift.runs DROP COLUMN parent_run_id, DROP COLUMN parent_step_id;
    DELETE FROM stackshift.steps WHERE kind = 'invoke';
  `)
}
