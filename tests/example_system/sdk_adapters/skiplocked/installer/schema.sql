-- skiplocked: the smallest honest PostgreSQL job queue. One table, one fetch function.
-- Idempotent (every statement is IF NOT EXISTS / OR REPLACE); install.py runs it in one
-- transaction, so a failure part-way leaves nothing behind.

CREATE TABLE IF NOT EXISTS skiplocked_jobs (
    id           bigserial PRIMARY KEY,
    queue        text        NOT NULL,
    body         jsonb       NOT NULL,
    state        text        NOT NULL DEFAULT 'queued'
                 CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    attempts     integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    run_after    timestamptz NOT NULL DEFAULT clock_timestamp(),  -- a delayed job: not before this
    locked_until timestamptz,                                     -- the lease of a running job
    locked_by    text,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at  timestamptz
);

-- What a fetch scans: the live jobs of one queue, oldest first.
CREATE INDEX IF NOT EXISTS skiplocked_jobs_live ON skiplocked_jobs (queue, id)
    WHERE state IN ('queued', 'running');

-- Take the oldest job of `queue` that is due (queued and past run_after) or whose lease ran
-- out (its worker died), skipping rows another session is fetching right now; lease it for
-- `lease_s` seconds and count the attempt. At most one row; none when nothing is due.
CREATE OR REPLACE FUNCTION skiplocked_fetch(p_queue text, p_lease_s double precision, p_worker text)
RETURNS TABLE (id bigint, body jsonb, attempts integer)
LANGUAGE sql VOLATILE AS $$
    UPDATE skiplocked_jobs AS j
       SET state = 'running',
           attempts = j.attempts + 1,
           locked_until = clock_timestamp() + make_interval(secs => p_lease_s),
           locked_by = p_worker
      FROM (SELECT c.id
              FROM skiplocked_jobs AS c
             WHERE c.queue = p_queue
               AND ((c.state = 'queued' AND c.run_after <= clock_timestamp())
                    OR (c.state = 'running' AND c.locked_until <= clock_timestamp()))
             ORDER BY c.id
             LIMIT 1
               FOR UPDATE SKIP LOCKED) AS next
     WHERE j.id = next.id
 RETURNING j.id, j.body, j.attempts
$$;

-- Finish the attempt `p_attempt` of job `p_id`: succeeded or failed (no retries). The attempt
-- number fences it: a worker whose lease ran out and whose job was taken again changes nothing.
CREATE OR REPLACE FUNCTION skiplocked_finish(p_id bigint, p_attempt integer, p_ok boolean)
RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    WITH done AS (
        UPDATE skiplocked_jobs
           SET state = CASE WHEN p_ok THEN 'succeeded' ELSE 'failed' END,
               locked_until = NULL,
               finished_at = clock_timestamp()
         WHERE id = p_id AND attempts = p_attempt AND state = 'running'
     RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM done)
$$;
