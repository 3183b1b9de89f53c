-- pgqueuer's dedupe_key: unique among queued and picked jobs only.
BEGIN;
SELECT plan(7);

CREATE FUNCTION pg_temp.enqueue(key text, st pgqueuer_status DEFAULT 'queued') RETURNS bigint LANGUAGE sql AS $$
    INSERT INTO pgqueuer (priority, entrypoint, status, dedupe_key, payload) VALUES (0, 'ep', st, key, 'x') RETURNING id
$$;

SELECT lives_ok($$SELECT pg_temp.enqueue('k1')$$, 'a job with a dedupe key');
SELECT throws_ok($$SELECT pg_temp.enqueue('k1')$$, '23505', NULL, 'a second queued job with the key is refused');
UPDATE pgqueuer SET status = 'picked' WHERE dedupe_key = 'k1';
SELECT throws_ok($$SELECT pg_temp.enqueue('k1')$$, '23505', NULL, 'refused while the first is picked, too');
UPDATE pgqueuer SET status = 'successful' WHERE dedupe_key = 'k1';
SELECT lives_ok($$SELECT pg_temp.enqueue('k1')$$, 'once the first finished, the key is free again');
SELECT lives_ok($$SELECT pg_temp.enqueue(NULL); SELECT pg_temp.enqueue(NULL)$$, 'jobs without a key are never deduplicated');
SELECT lives_ok($$SELECT pg_temp.enqueue('k2', 'exception'); SELECT pg_temp.enqueue('k2')$$,
                'a failed job does not hold its key');
SELECT is((SELECT count(*)::int FROM pgqueuer WHERE dedupe_key = 'k1' AND status IN ('queued', 'picked')), 1,
          'at most one live job per key');

SELECT * FROM finish();
ROLLBACK;
