-- PGMQ's objects as installed from the pgmq.sql that PyPI's pgmq ships.
BEGIN;
SELECT plan(22);

SELECT has_schema('pgmq', 'schema pgmq exists');
SELECT has_table('pgmq', 'meta', 'queue registry pgmq.meta exists');
SELECT has_column('pgmq', 'meta', 'queue_name', 'meta.queue_name');
SELECT has_column('pgmq', 'meta', 'is_partitioned', 'meta.is_partitioned');
SELECT has_type('pgmq', 'message_record', 'type message_record');
SELECT has_type('pgmq', 'metrics_result', 'type metrics_result');
SELECT has_function('pgmq', 'create', ARRAY['text'], 'create(queue)');
SELECT has_function('pgmq', 'drop_queue', ARRAY['text'], 'drop_queue(queue)');
SELECT has_function('pgmq', 'send', ARRAY['text', 'jsonb', 'integer'], 'send(queue, msg, delay)');
SELECT has_function('pgmq', 'send_batch', ARRAY['text', 'jsonb[]'], 'send_batch(queue, msgs)');
SELECT has_function('pgmq', 'read', ARRAY['text', 'integer', 'integer', 'jsonb'], 'read(queue, vt, qty, conditional)');
SELECT has_function('pgmq', 'pop', ARRAY['text', 'integer'], 'pop(queue, qty)');
SELECT has_function('pgmq', 'set_vt', ARRAY['text', 'bigint', 'integer'], 'set_vt(queue, id, vt)');
SELECT has_function('pgmq', 'archive', ARRAY['text', 'bigint'], 'archive(queue, id)');
SELECT has_function('pgmq', 'delete', ARRAY['text', 'bigint'], 'delete(queue, id)');
SELECT has_function('pgmq', 'metrics', ARRAY['text'], 'metrics(queue)');

-- A queue's own tables and the index its fetch path uses.
SELECT pgmq.create('objects_q');
SELECT has_table('pgmq', 'q_objects_q', 'create() makes the queue table q_<name>');
SELECT has_table('pgmq', 'a_objects_q', 'create() makes the archive table a_<name>');
SELECT col_is_pk('pgmq', 'q_objects_q', 'msg_id', 'msg_id is the primary key');
SELECT col_not_null('pgmq', 'q_objects_q', 'vt', 'vt (visibility timeout) is NOT NULL');
SELECT has_index('pgmq', 'q_objects_q', 'q_objects_q_vt_idx', ARRAY['vt'], 'read() has an index on vt');
SELECT is((SELECT count(*)::int FROM pgmq.meta WHERE queue_name = 'objects_q'), 1, 'the queue is registered in meta');

SELECT * FROM finish();
ROLLBACK;
