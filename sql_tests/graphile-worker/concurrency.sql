-- graphile-worker's job_key under concurrency: a key whose job a worker holds (locked) is
-- not replaced in place; two sessions adding the same key end with one live job.
SET lock_timeout = '2s';
SELECT plan(5);

SELECT graphile_worker.add_job('cc', '{"v":1}', job_key => 'held');
UPDATE graphile_worker._private_jobs SET locked_at = now(), locked_by = 'w1' WHERE key = 'held';
SELECT graphile_worker.add_job('cc', '{"v":2}', job_key => 'held');
SELECT is((SELECT count(*)::int FROM graphile_worker._private_jobs j JOIN graphile_worker._private_tasks t ON t.id = j.task_id
           WHERE t.identifier = 'cc'), 2, 'replacing a locked job adds a new job instead of changing the running one');
SELECT is((SELECT payload->>'v' FROM graphile_worker._private_jobs WHERE locked_by = 'w1'), '1',
          'the running job keeps its payload');
SELECT is((SELECT payload->>'v' FROM graphile_worker._private_jobs WHERE key = 'held'), '2', 'the key moves to the new job');

SELECT dblink_connect('peer', peer_connstr());
SELECT dblink_exec('peer', 'BEGIN');
SELECT * FROM dblink('peer', $$SELECT (graphile_worker.add_job('race', '{"from":"peer"}', job_key => 'race')).id$$) AS t(id bigint);
SELECT throws_ok($$SELECT graphile_worker.add_job('race', '{"from":"us"}', job_key => 'race')$$, '55P03', NULL,
                 'a racing add_job with the same key waits for the peer''s transaction');
SELECT dblink_exec('peer', 'COMMIT');
SELECT graphile_worker.add_job('race', '{"from":"us"}', job_key => 'race');
SELECT is((SELECT count(*)::int FROM graphile_worker._private_jobs WHERE key = 'race'), 1, 'one job per key after the race');

SELECT dblink_disconnect('peer');
SELECT * FROM finish();
