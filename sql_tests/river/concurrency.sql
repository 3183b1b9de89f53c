-- River's own fetch query (river_fetch, see probe.py) racing a second session: priority
-- order, SKIP LOCKED, nothing handed out twice; and unique inserts racing each other.
SET lock_timeout = '2s';
SELECT plan(8);

INSERT INTO river_job (args, kind, queue, priority) VALUES
    ('{"n":1}', 'k', 'cc', 2), ('{"n":2}', 'k', 'cc', 1), ('{"n":3}', 'k', 'cc', 1), ('{"n":4}', 'k', 'cc', 4);
CREATE TEMP TABLE ids AS SELECT id, (args->>'n')::int AS n FROM river_job WHERE queue = 'cc';

SELECT dblink_connect('peer', peer_connstr());
SELECT dblink_exec('peer', 'BEGIN');
SELECT is(
    (SELECT t.id FROM dblink('peer', $$SELECT id FROM river_fetch('cc', 1, 'peer')$$) AS t(id bigint)),
    (SELECT id FROM ids WHERE n = 2), 'the peer fetches the first priority-1 job and holds it');
SELECT results_eq($$SELECT id FROM river_fetch('cc', 1, 'us')$$, $$SELECT id FROM ids WHERE n = 3$$,
                  'our fetch skips the held job and takes the next priority-1 job');
SELECT results_eq($$SELECT id FROM river_fetch('cc', 1, 'us')$$, $$SELECT id FROM ids WHERE n = 1$$,
                  'then priority 2');
SELECT results_eq($$SELECT id FROM river_fetch('cc', 5, 'us')$$, $$SELECT id FROM ids WHERE n = 4$$,
                  'then priority 4; the held job is not handed out again');
SELECT dblink_exec('peer', 'COMMIT');
SELECT is((SELECT count(*)::int FROM river_job WHERE queue = 'cc' AND state = 'running' AND attempt = 1), 4,
          'every job is running, each fetched exactly once');
SELECT is((SELECT attempted_by FROM river_job WHERE id = (SELECT id FROM ids WHERE n = 2)), ARRAY['peer'],
          'attempted_by records the fetching worker');

-- two sessions insert the same unique job: the second waits, then fails on the unique index
SELECT dblink_exec('peer', 'BEGIN');
SELECT dblink_exec('peer', $$INSERT INTO river_job (args, kind, unique_key, unique_states) VALUES ('{}', 'u', 'race', B'11110101')$$);
SELECT throws_ok($$INSERT INTO river_job (args, kind, unique_key, unique_states) VALUES ('{}', 'u', 'race', B'11110101')$$,
                 '55P03', NULL, 'a racing unique insert waits on the peer''s uncommitted row (lock_timeout here)');
SELECT dblink_exec('peer', 'COMMIT');
SELECT throws_ok($$INSERT INTO river_job (args, kind, unique_key, unique_states) VALUES ('{}', 'u', 'race', B'11110101')$$,
                 '23505', NULL, 'after the peer commits, the duplicate is refused');

SELECT dblink_disconnect('peer');
SELECT * FROM finish();
