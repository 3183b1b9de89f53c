-- PGMQ's SQL API: at-least-once delivery with a visibility timeout.
BEGIN;
SELECT plan(22);

SELECT pgmq.create('api_q');
SELECT is((SELECT pgmq.send('api_q', '{"n": 1}')), 1::bigint, 'send returns the new msg_id');
SELECT pgmq.send('api_q', '{"n": 2}');
SELECT pgmq.send('api_q', '{"n": 3}');

-- read: oldest first, hides what it returns for vt seconds
SELECT results_eq(
    $$SELECT msg_id FROM pgmq.read('api_q', 30, 2)$$,
    ARRAY[1::bigint, 2::bigint],
    'read returns the oldest messages first, qty at most');
SELECT is((SELECT read_ct FROM pgmq.q_api_q WHERE msg_id = 1), 1, 'read increments read_ct');
SELECT ok((SELECT vt > clock_timestamp() + interval '25 seconds' FROM pgmq.q_api_q WHERE msg_id = 1),
          'read pushes vt out by the visibility timeout');
SELECT results_eq($$SELECT msg_id FROM pgmq.read('api_q', 30, 5)$$, ARRAY[3::bigint],
                  'messages inside their visibility timeout are not read again');

-- set_vt: make message 1 visible again at once; it is redelivered
SELECT pgmq.set_vt('api_q', 1::bigint, 0);
SELECT results_eq($$SELECT msg_id FROM pgmq.read('api_q', 30, 5)$$, ARRAY[1::bigint],
                  'set_vt(0) makes a message visible again (redelivery)');
SELECT is((SELECT read_ct FROM pgmq.q_api_q WHERE msg_id = 1), 2, 'redelivery counts as a second read');

-- delay on send
SELECT pgmq.send('api_q', '{"n": 4}', 60);
SELECT is((SELECT count(*)::int FROM pgmq.read('api_q', 30, 10)), 0, 'a delayed message is invisible until its delay');

-- archive and delete
SELECT ok(pgmq.archive('api_q', 1::bigint), 'archive(id) returns true');
SELECT is((SELECT count(*)::int FROM pgmq.q_api_q WHERE msg_id = 1), 0, 'archive removes from the queue');
SELECT is((SELECT message->>'n' FROM pgmq.a_api_q WHERE msg_id = 1), '1', 'archive keeps the message');
SELECT ok(pgmq.delete('api_q', 2::bigint), 'delete(id) returns true');
SELECT ok(NOT pgmq.delete('api_q', 2::bigint), 'deleting twice returns false');
SELECT is((SELECT count(*)::int FROM pgmq.a_api_q WHERE msg_id = 2), 0, 'delete does not archive');

-- pop: read and delete in one step
SELECT pgmq.create('pop_q');
SELECT pgmq.send_batch('pop_q', ARRAY['{"a":1}', '{"a":2}']::jsonb[]);
SELECT results_eq($$SELECT (message->>'a')::int FROM pgmq.pop('pop_q')$$, ARRAY[1], 'pop returns the oldest message');
SELECT is((SELECT count(*)::int FROM pgmq.q_pop_q), 1, 'pop deletes what it returns');

-- metrics
SELECT is((pgmq.metrics('pop_q')).queue_length, 1::bigint, 'metrics.queue_length counts waiting messages');
SELECT is((pgmq.metrics('pop_q')).total_messages, 2::bigint, 'metrics.total_messages counts every send');

-- drop_queue and hostile names
SELECT ok(pgmq.drop_queue('pop_q'), 'drop_queue returns true');
SELECT hasnt_table('pgmq', 'q_pop_q', 'drop_queue removes the queue table');
SELECT throws_ok($$SELECT pgmq.create('x; drop table pgmq.meta')$$, NULL,
                 'a queue name with SQL in it is refused');
SELECT throws_ok($$SELECT pgmq.create(repeat('a', 60))$$, 'P0001',
                 'queue name is too long, maximum length is 47 characters', 'an over-long queue name is refused');

SELECT * FROM finish();
ROLLBACK;
