-- procrastinate's objects, as `procrastinate schema --apply` installs them.
BEGIN;
SELECT plan(20);

SELECT has_table('procrastinate_jobs', 'procrastinate_jobs exists');
SELECT has_table('procrastinate_workers', 'procrastinate_workers exists');
SELECT has_table('procrastinate_events', 'procrastinate_events exists');
SELECT has_type('procrastinate_job_status', 'type procrastinate_job_status');
SELECT enum_has_labels('procrastinate_job_status',
    ARRAY['todo', 'doing', 'succeeded', 'failed', 'cancelled', 'aborting', 'aborted'], 'job statuses');
SELECT col_type_is('procrastinate_jobs', 'priority', 'integer', 'jobs.priority is an integer');
SELECT col_default_is('procrastinate_jobs', 'status', 'todo'::procrastinate_job_status, 'new jobs are todo');
SELECT col_not_null('procrastinate_jobs', 'args', 'jobs.args is NOT NULL');
SELECT has_column('procrastinate_jobs', 'queueing_lock', 'jobs.queueing_lock');
SELECT has_column('procrastinate_jobs', 'lock', 'jobs.lock');
SELECT fk_ok('procrastinate_jobs', 'worker_id', 'procrastinate_workers', 'id', 'a job points at its worker');
SELECT has_function('procrastinate_defer_jobs_v1', ARRAY['procrastinate_job_to_defer_v1[]'], 'defer_jobs_v1');
SELECT has_function('procrastinate_fetch_job_v2', ARRAY['character varying[]', 'bigint'], 'fetch_job_v2');
SELECT has_function('procrastinate_finish_job_v1', ARRAY['bigint', 'procrastinate_job_status', 'boolean'], 'finish_job_v1');
SELECT has_function('procrastinate_retry_job_v2',
    ARRAY['bigint', 'timestamp with time zone', 'integer', 'character varying', 'character varying'], 'retry_job_v2');
SELECT has_function('procrastinate_register_worker_v1', 'register_worker_v1');
SELECT has_index('procrastinate_jobs', 'procrastinate_jobs_priority_idx_v1', ARRAY['priority', 'id'],
                 'the fetch path has a (priority, id) index');
SELECT index_is_unique('public', 'procrastinate_jobs', 'procrastinate_jobs_queueing_lock_idx_v1', 'queueing_lock index is unique');
SELECT index_is_unique('public', 'procrastinate_jobs', 'procrastinate_jobs_lock_idx_v1', 'lock index is unique');
SELECT has_trigger('procrastinate_jobs', 'procrastinate_jobs_notify_queue_job_inserted_v1', 'insert notifies listeners');

SELECT * FROM finish();
ROLLBACK;
