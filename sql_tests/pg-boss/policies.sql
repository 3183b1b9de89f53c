-- pg-boss queues and their policies, enforced by partial unique indexes.
BEGIN;
SELECT plan(9);

SELECT lives_ok($$SELECT pgboss.create_queue('std', '{"policy":"standard"}')$$, 'create a standard queue');
SELECT is((SELECT (policy, retry_limit, expire_seconds) FROM pgboss.queue WHERE name = 'std'),
          ('standard'::text, 2, 900), 'queue defaults: retry_limit 2, expiry 900 s');
SELECT lives_ok($$SELECT pgboss.create_queue('std', '{"policy":"standard"}')$$, 'creating a queue twice is harmless');
SELECT pgboss.create_queue('sh', '{"policy":"short"}');
SELECT pgboss.create_queue('si', '{"policy":"singleton"}');
SELECT pgboss.create_queue('ex', '{"policy":"exclusive"}');

CREATE FUNCTION pg_temp.job(q text, st pgboss.job_state DEFAULT 'created', k text DEFAULT NULL) RETURNS void LANGUAGE sql AS $$
    INSERT INTO pgboss.job (name, state, singleton_key, policy) SELECT q, st, k, policy FROM pgboss.queue WHERE name = q
$$;

SELECT lives_ok($$SELECT pg_temp.job('std'); SELECT pg_temp.job('std')$$, 'a standard queue takes any number of jobs');
SELECT pg_temp.job('sh');
SELECT throws_ok($$SELECT pg_temp.job('sh')$$, '23505', NULL, 'short: one created job at a time');
SELECT lives_ok($$SELECT pg_temp.job('sh', 'active')$$, 'short: an active job besides it is fine');
SELECT pg_temp.job('si', 'active');
SELECT throws_ok($$SELECT pg_temp.job('si', 'active')$$, '23505', NULL, 'singleton: one active job at a time');
SELECT pg_temp.job('ex', 'created', 'k');
SELECT throws_ok($$SELECT pg_temp.job('ex', 'active', 'k')$$, '23505', NULL, 'exclusive: one created-or-active job per key');
SELECT lives_ok($$SELECT pg_temp.job('ex', 'created', 'other')$$, 'exclusive: other keys are independent');

SELECT * FROM finish();
ROLLBACK;
