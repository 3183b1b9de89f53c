-- graphile-worker's SQL API: add_job with priority/run_at/job_key modes, completing,
-- failing and unlocking jobs, and the hard-coded 4-hour lock expiry.
BEGIN;
SELECT plan(16);

SELECT is((graphile_worker.add_job('task', '{"a":1}', priority => 3)).priority::int, 3, 'add_job stores the priority');
SELECT is((SELECT payload::text FROM graphile_worker._private_jobs WHERE priority = 3), '{"a":1}', 'add_job stores the payload');
SELECT ok((graphile_worker.add_job('later', run_at => now() + interval '1 hour')).run_at > now(), 'add_job stores run_at');
SELECT throws_ok($$SELECT graphile_worker.add_job('t', max_attempts => 0)$$, '23514', NULL, 'max_attempts 0 is refused');

-- job_key modes
SELECT graphile_worker.add_job('keyed', '{"v":1}', job_key => 'k', run_at => now() + interval '1 hour');
SELECT graphile_worker.add_job('keyed', '{"v":2}', job_key => 'k');
SELECT is((SELECT count(*)::int FROM graphile_worker.jobs WHERE key = 'k'), 1, 'replace mode keeps one job per key');
SELECT is((SELECT payload->>'v' FROM graphile_worker._private_jobs WHERE key = 'k'), '2', 'replace mode takes the new payload');
SELECT ok((SELECT run_at <= now() FROM graphile_worker.jobs WHERE key = 'k'), 'replace mode takes the new run_at');
SELECT graphile_worker.add_job('keyed', '{"v":3}', job_key => 'k', run_at => now() + interval '2 hours',
                               job_key_mode => 'preserve_run_at');
SELECT ok((SELECT run_at <= now() FROM graphile_worker.jobs WHERE key = 'k'), 'preserve_run_at keeps the old run_at');
SELECT graphile_worker.add_job('keyed', '{"v":4}', job_key => 'k', job_key_mode => 'unsafe_dedupe');
SELECT is((SELECT payload->>'v' FROM graphile_worker._private_jobs WHERE key = 'k'), '3', 'unsafe_dedupe leaves the existing job alone');

-- complete / permanently fail / remove, on unlocked jobs
SELECT is((SELECT count(*)::int FROM graphile_worker.complete_jobs(ARRAY[(SELECT id FROM graphile_worker.jobs WHERE task_identifier = 'task')])),
          1, 'complete_jobs deletes an unlocked job');
SELECT is((SELECT attempts = max_attempts FROM graphile_worker.permanently_fail_jobs(
              ARRAY[(SELECT id FROM graphile_worker.jobs WHERE task_identifier = 'later')], 'boom')), true,
          'permanently_fail_jobs exhausts the attempts');
SELECT ok(NOT (SELECT is_available FROM graphile_worker._private_jobs WHERE task_id =
              (SELECT id FROM graphile_worker._private_tasks WHERE identifier = 'later')), 'a permanently failed job is unavailable');
SELECT is((graphile_worker.remove_job('k')).key, 'k', 'remove_job removes by key');

-- locks: what a crashed worker leaves behind
SELECT graphile_worker.add_job('locked', job_key => 'L');
UPDATE graphile_worker._private_jobs SET locked_at = now() - interval '3 hours', locked_by = 'crashed' WHERE key = 'L';
SELECT is((SELECT count(*)::int FROM graphile_worker.complete_jobs(ARRAY[(SELECT id FROM graphile_worker._private_jobs WHERE key = 'L')])),
          0, 'a job locked 3 hours ago cannot be completed by another worker');
UPDATE graphile_worker._private_jobs SET locked_at = now() - interval '4 hours 1 minute' WHERE key = 'L';
SELECT is((SELECT count(*)::int FROM graphile_worker.complete_jobs(ARRAY[(SELECT id FROM graphile_worker._private_jobs WHERE key = 'L')])),
          1, 'after the hard-coded 4 hours the lock counts as expired');
SELECT graphile_worker.add_job('locked2', job_key => 'L2');
UPDATE graphile_worker._private_jobs SET locked_at = now(), locked_by = 'crashed' WHERE key = 'L2';
SELECT graphile_worker.force_unlock_workers(ARRAY['crashed']);
SELECT ok((SELECT locked_at IS NULL AND is_available FROM graphile_worker._private_jobs WHERE key = 'L2'),
          'force_unlock_workers frees the jobs of the named workers at once');

SELECT * FROM finish();
ROLLBACK;
