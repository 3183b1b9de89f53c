-- skiplocked's SQL contract: the table and its fetch. Two sessions on one queue (the second
-- through dblink) never get the same row: skiplocked_fetch skips rows another session is
-- fetching (FOR UPDATE SKIP LOCKED) and leases what it takes; a lease that runs out makes
-- the row fetchable again (crash recovery), and a stale attempt cannot finish it.
-- Runs outside a transaction: the peer must see committed rows. A fetch that waited for the
-- lock instead of skipping it would hit the lock_timeout and fail rather than hang.
SET lock_timeout = '2s';
SELECT plan(24);

-- the objects
SELECT has_table('skiplocked_jobs', 'the jobs table exists');
SELECT col_is_pk('skiplocked_jobs', 'id', 'id is the primary key');
SELECT has_column('skiplocked_jobs', c, 'skiplocked_jobs has ' || c)
  FROM unnest(ARRAY['queue', 'body', 'state', 'attempts', 'run_after', 'locked_until']) AS c;
SELECT has_index('skiplocked_jobs', 'skiplocked_jobs_live', 'the fetch has its partial index');
SELECT has_function('skiplocked_fetch', ARRAY['text', 'double precision', 'text'], 'skiplocked_fetch exists');
SELECT has_function('skiplocked_finish', ARRAY['bigint', 'integer', 'boolean'], 'skiplocked_finish exists');
SELECT throws_ok($$INSERT INTO skiplocked_jobs (queue, body, state) VALUES ('sl_bad', '{}', 'lost')$$,
                 '23514', NULL, 'a state outside the four is refused');

-- three due jobs, one delayed, one on another queue
INSERT INTO skiplocked_jobs (queue, body) VALUES ('sl_cc', '{"n": 1}'), ('sl_cc', '{"n": 2}'), ('sl_cc', '{"n": 3}');
INSERT INTO skiplocked_jobs (queue, body, run_after) VALUES ('sl_cc', '{"n": 4}', clock_timestamp() + interval '1 hour');
INSERT INTO skiplocked_jobs (queue, body) VALUES ('sl_other', '{"n": 5}');
CREATE TEMP TABLE got (who text, n text, attempts int);
SELECT dblink_connect('peer', peer_connstr());

-- the peer fetches inside an open transaction: it holds job 1's row lock
SELECT dblink_exec('peer', 'BEGIN');
SELECT is(
    (SELECT n FROM dblink('peer', $$SELECT body->>'n' FROM skiplocked_fetch('sl_cc', 30, 'peer')$$) AS t(n text)),
    '1', 'the peer fetches the oldest job, 1, and keeps its transaction open');
SELECT lives_ok($$INSERT INTO got SELECT 'me', body->>'n', attempts FROM skiplocked_fetch('sl_cc', 30, 'me')$$,
                'a fetch does not wait for the row the peer holds');
SELECT is((SELECT n FROM got WHERE who = 'me'), '2', 'it skipped the locked job 1 and took job 2');
SELECT is((SELECT body->>'n' FROM skiplocked_fetch('sl_cc', 30, 'me')), '3', 'the next fetch takes job 3');
SELECT is((SELECT count(*)::int FROM skiplocked_fetch('sl_cc', 30, 'me')), 0,
          'nothing is left: 1 is the peer''s, 2 and 3 are leased, 4 is not due, 5 is another queue''s');
SELECT dblink_exec('peer', 'COMMIT');

-- the peer's lease holds after its commit; nothing was handed out twice
SELECT is((SELECT count(*)::int FROM skiplocked_fetch('sl_cc', 30, 'me')), 0, 'the peer''s committed lease keeps job 1 from others');
SELECT is((SELECT array_agg(body->>'n' ORDER BY id) FROM skiplocked_jobs WHERE queue = 'sl_cc' AND attempts = 1),
          ARRAY['1', '2', '3'], 'each of jobs 1-3 was fetched exactly once');
SELECT is((SELECT locked_by FROM skiplocked_jobs WHERE queue = 'sl_cc' AND body->>'n' = '1'), 'peer', 'job 1 is leased to the peer');

-- the peer "dies": once its lease has run out, job 1 is fetched again as attempt 2
UPDATE skiplocked_jobs SET locked_until = clock_timestamp() - interval '1 second' WHERE queue = 'sl_cc' AND body->>'n' = '1';
SELECT results_eq($$SELECT body->>'n', attempts FROM skiplocked_fetch('sl_cc', 30, 'me')$$,
                  $$VALUES ('1', 2)$$, 'a job whose lease ran out is fetched again, as attempt 2');
SELECT is(skiplocked_finish((SELECT id FROM skiplocked_jobs WHERE queue = 'sl_cc' AND body->>'n' = '1'), 1, true), false,
          'the dead worker''s attempt 1 cannot finish the job');
SELECT is(skiplocked_finish((SELECT id FROM skiplocked_jobs WHERE queue = 'sl_cc' AND body->>'n' = '1'), 2, true), true,
          'attempt 2 finishes it');
SELECT is((SELECT state FROM skiplocked_jobs WHERE queue = 'sl_cc' AND body->>'n' = '1'), 'succeeded', 'job 1 succeeded');

SELECT dblink_disconnect('peer');
DELETE FROM skiplocked_jobs WHERE queue IN ('sl_cc', 'sl_other');
SELECT * FROM finish();
