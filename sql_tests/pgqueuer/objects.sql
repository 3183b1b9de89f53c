-- pgqueuer's objects, as `pgq install` makes them.
BEGIN;
SELECT plan(18);

SELECT has_table('pgqueuer', 'pgqueuer (the job table) exists');
SELECT has_table('pgqueuer_log', 'pgqueuer_log exists');
SELECT has_table('pgqueuer_statistics', 'pgqueuer_statistics exists');
SELECT has_table('pgqueuer_schedules', 'pgqueuer_schedules exists');
SELECT has_type('pgqueuer_status', 'type pgqueuer_status');
SELECT enum_has_labels('pgqueuer_status',
    ARRAY['queued', 'picked', 'successful', 'exception', 'canceled', 'deleted', 'failed'], 'job statuses');
SELECT col_type_is('pgqueuer', 'priority', 'integer', 'priority is an integer');
SELECT col_not_null('pgqueuer', 'entrypoint', 'entrypoint is NOT NULL');
SELECT col_type_is('pgqueuer', 'payload', 'bytea', 'payload is bytea');
SELECT col_default_is('pgqueuer', 'attempts', 0, 'attempts start at 0');
SELECT has_column('pgqueuer', 'heartbeat', 'heartbeat column (stall detection)');
SELECT has_column('pgqueuer', 'execute_after', 'execute_after column (delays)');
SELECT has_index('pgqueuer', 'pgqueuer_ep_prio_id_idx', ARRAY['entrypoint', 'priority', 'id'],
                 'the dequeue path index (entrypoint, priority desc, id)');
SELECT has_index('pgqueuer', 'pgqueuer_ep_ea_idx', ARRAY['entrypoint', 'execute_after'], 'the delayed-job index');
SELECT index_is_unique('public', 'pgqueuer', 'pgqueuer_unique_dedupe_key', 'the dedupe index is unique');
SELECT index_is_unique('public', 'pgqueuer', 'pgqueuer_picked_slot_idx', 'the concurrency-slot index is unique');
SELECT has_trigger('pgqueuer', 'tg_pgqueuer_changed', 'changes are announced by a trigger');
SELECT has_function('fn_pgqueuer_changed', 'the announcing trigger function');

SELECT * FROM finish();
ROLLBACK;
