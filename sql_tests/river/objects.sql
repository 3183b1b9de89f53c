-- River's objects, as its migrations (rivermigrate, what `river migrate-up` runs) make them.
BEGIN;
SELECT plan(20);

SELECT has_table('river_job', 'river_job exists');
SELECT has_table('river_queue', 'river_queue exists');
SELECT has_table('river_migration', 'river_migration exists');
SELECT has_type('river_job_state', 'type river_job_state');
SELECT enum_has_labels('river_job_state',
    ARRAY['available', 'cancelled', 'completed', 'discarded', 'pending', 'retryable', 'running', 'scheduled'], 'job states');
SELECT col_default_is('river_job', 'state', 'available'::river_job_state, 'new jobs are available');
SELECT col_default_is('river_job', 'priority', 1, 'default priority is 1 (the highest)');
SELECT col_default_is('river_job', 'max_attempts', 25, 'default max_attempts is 25');
SELECT col_type_is('river_job', 'args', 'jsonb', 'args are jsonb');
SELECT col_not_null('river_job', 'kind', 'kind is NOT NULL');
SELECT has_column('river_job', 'unique_key', 'unique_key column');
SELECT has_column('river_job', 'unique_states', 'unique_states column');
SELECT has_index('river_job', 'river_job_prioritized_fetching_index', ARRAY['state', 'queue', 'priority', 'scheduled_at', 'id'],
                 'the fetch path index: (state, queue, priority, scheduled_at, id)');
SELECT index_is_unique('public', 'river_job', 'river_job_unique_idx', 'the unique-job index is unique');
SELECT has_function('river_job_state_in_bitmask', ARRAY['bit', 'river_job_state'], 'river_job_state_in_bitmask');
SELECT col_has_check('river_job', 'priority', 'priority has a check');
SELECT col_has_check('river_job', 'max_attempts', 'max_attempts has a check');
SELECT ok((SELECT max(version) FROM river_migration WHERE line = 'main') >= 6, 'the main migration line is applied (v6 or later)');
SELECT has_table('river_notification', 'river_notification exists');
SELECT has_function('river_fetch', ARRAY['text', 'integer', 'text'], 'River''s own fetch query is installed as a probe');

SELECT * FROM finish();
ROLLBACK;
