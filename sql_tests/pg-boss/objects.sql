-- pg-boss's objects, as its own migrator (`pg-boss migrate`) makes them.
BEGIN;
SELECT plan(18);

SELECT has_schema('pgboss', 'schema pgboss');
SELECT has_table('pgboss', 'job', 'the job table');
SELECT is((SELECT relkind::text FROM pg_class WHERE oid = 'pgboss.job'::regclass), 'p', 'job is partitioned (by queue name)');
SELECT has_table('pgboss', 'job_common', 'job_common, the default partition');
SELECT has_table('pgboss', 'queue', 'the queue table');
SELECT has_table('pgboss', 'version', 'the version table');
SELECT has_type('pgboss', 'job_state', 'type job_state');
SELECT enum_has_labels('pgboss', 'job_state', ARRAY['created', 'retry', 'active', 'completed', 'cancelled', 'failed'],
                       'job states, in the order the indexes compare them');
SELECT col_type_is('pgboss', 'job_common', 'id', 'uuid', 'job ids are uuids');
SELECT col_default_is('pgboss', 'job_common', 'priority', 0, 'default priority 0');
SELECT col_default_is('pgboss', 'job_common', 'retry_limit', 2, 'default retry_limit 2');
SELECT col_default_is('pgboss', 'job_common', 'expire_seconds', 900, 'default expiry 15 minutes');
SELECT has_column('pgboss', 'job_common', 'dead_letter', 'dead_letter column');
SELECT has_column('pgboss', 'job_common', 'singleton_key', 'singleton_key column');
SELECT has_index('pgboss', 'job_common', 'job_common_i11', ARRAY['name', 'priority', 'created_on', 'start_after'],
                 'the fetch path index (name, priority desc, created_on, start_after)');
SELECT has_function('pgboss', 'create_queue', ARRAY['text', 'jsonb'], 'create_queue');
SELECT has_function('pgboss', 'delete_queue', ARRAY['text'], 'delete_queue');
SELECT ok((SELECT version FROM pgboss.version) >= 20, 'the schema version is recorded');

SELECT * FROM finish();
ROLLBACK;
