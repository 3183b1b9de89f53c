-- procrastinate's SQL API: defer, fetch (priority then FIFO), finish, retry, queueing locks.
BEGIN;
SELECT plan(16);

CREATE TEMP TABLE w AS SELECT worker_id FROM procrastinate_register_worker_v1();
CREATE FUNCTION pg_temp.defer(q text, prio int, qlock text DEFAULT NULL, lck text DEFAULT NULL,
                              at timestamptz DEFAULT NULL) RETURNS bigint LANGUAGE sql AS $$
    SELECT (procrastinate_defer_jobs_v1(ARRAY[ROW(q, 'task', prio, lck, qlock, '{}'::jsonb, at)::procrastinate_job_to_defer_v1]))[1]
$$;
CREATE FUNCTION pg_temp.fetch(q text) RETURNS bigint LANGUAGE sql AS $$
    SELECT (procrastinate_fetch_job_v2(ARRAY[q]::varchar[], (SELECT worker_id FROM w))).id
$$;

SELECT pg_temp.defer('api', 0);
SELECT pg_temp.defer('api', 5);
SELECT pg_temp.defer('api', 5);
SELECT is((SELECT count(*)::int FROM procrastinate_jobs WHERE queue_name = 'api' AND status = 'todo'), 3, 'defer makes todo jobs');
SELECT is(pg_temp.fetch('api'), 2::bigint, 'fetch takes the highest priority first');
SELECT is(pg_temp.fetch('api'), 3::bigint, 'equal priorities are fetched in FIFO order');
SELECT is((SELECT status::text FROM procrastinate_jobs WHERE id = 2), 'doing', 'a fetched job is doing');
SELECT is((SELECT worker_id FROM procrastinate_jobs WHERE id = 2), (SELECT worker_id FROM w), 'a fetched job records its worker');

SELECT lives_ok($$SELECT procrastinate_finish_job_v1(2, 'succeeded', false)$$, 'finish a doing job');
SELECT is((SELECT (status::text, attempts) FROM procrastinate_jobs WHERE id = 2), ('succeeded'::text, 1), 'finish counts the attempt');
SELECT throws_ok($$SELECT procrastinate_finish_job_v1(2, 'succeeded', false)$$, NULL, 'finishing twice is refused');
SELECT throws_ok($$SELECT procrastinate_finish_job_v1(3, 'todo', false)$$, NULL, 'todo is not an end status');

SELECT lives_ok($$SELECT procrastinate_retry_job_v2(3, now() + interval '1 hour', NULL, NULL, NULL)$$, 'retry a doing job later');
SELECT is((SELECT (status::text, attempts) FROM procrastinate_jobs WHERE id = 3), ('todo'::text, 1), 'retry puts it back as todo, one attempt counted');
SELECT is(pg_temp.fetch('api'), 1::bigint, 'a job retried for later is not fetched before its time');
SELECT ok(pg_temp.fetch('api') IS NULL, 'nothing else is due');

SELECT pg_temp.defer('ql', 0, 'only-one');
SELECT throws_ok($$SELECT pg_temp.defer('ql', 0, 'only-one')$$, '23505', NULL, 'a second todo job with the same queueing_lock is refused');

-- lock: jobs sharing a lock never run at once
SELECT pg_temp.defer('lk', 0, NULL, 'L');
SELECT pg_temp.defer('lk', 0, NULL, 'L');
SELECT ok(pg_temp.fetch('lk') IS NOT NULL, 'the first job of a lock is fetched');
SELECT ok(pg_temp.fetch('lk') IS NULL, 'the second job of the same lock waits while the first is doing');

SELECT * FROM finish();
ROLLBACK;
