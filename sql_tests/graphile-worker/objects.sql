-- graphile-worker's objects, as its own migrations (`graphile-worker --schema-only`) make them.
BEGIN;
SELECT plan(18);

SELECT has_schema('graphile_worker', 'schema graphile_worker');
SELECT has_table('graphile_worker', '_private_jobs', 'the job table');
SELECT has_table('graphile_worker', '_private_job_queues', 'the named-queue table');
SELECT has_table('graphile_worker', '_private_tasks', 'the task table');
SELECT has_table('graphile_worker', 'migrations', 'the migrations table');
SELECT has_view('graphile_worker', 'jobs', 'the public jobs view');
SELECT col_default_is('graphile_worker', '_private_jobs', 'priority', 0, 'default priority 0');
SELECT col_default_is('graphile_worker', '_private_jobs', 'max_attempts', 25, 'default max_attempts 25');
SELECT col_is_unique('graphile_worker', '_private_jobs', ARRAY['key'], 'job_key is unique');
SELECT has_column('graphile_worker', '_private_jobs', 'is_available', 'is_available (generated) column');
SELECT has_index('graphile_worker', '_private_jobs', 'jobs_main_index', ARRAY['priority', 'run_at', 'id', 'task_id', 'job_queue_id'],
                 'the fetch path index: (priority, run_at) INCLUDE (id, task_id, job_queue_id)');
SELECT has_function('graphile_worker', 'add_job',
    ARRAY['text', 'json', 'text', 'timestamp with time zone', 'integer', 'text', 'integer', 'text[]', 'text'], 'add_job');
SELECT has_function('graphile_worker', 'add_jobs', ARRAY['graphile_worker.job_spec[]', 'boolean'], 'add_jobs');
SELECT has_function('graphile_worker', 'complete_jobs', ARRAY['bigint[]'], 'complete_jobs');
SELECT has_function('graphile_worker', 'permanently_fail_jobs', ARRAY['bigint[]', 'text'], 'permanently_fail_jobs');
SELECT has_function('graphile_worker', 'force_unlock_workers', ARRAY['text[]'], 'force_unlock_workers');
SELECT has_function('graphile_worker', 'remove_job', ARRAY['text'], 'remove_job');
SELECT has_function('graphile_worker', 'reschedule_jobs',
    ARRAY['bigint[]', 'timestamp with time zone', 'integer', 'integer', 'integer'], 'reschedule_jobs');

SELECT * FROM finish();
ROLLBACK;
