-- Two sessions on one queue (the second through dblink): read() must skip rows another
-- session holds (FOR UPDATE SKIP LOCKED) and never hand one message to both.
-- Runs outside a transaction: the peer must see committed rows. A fetch that waits for
-- the lock instead of skipping it hits the lock_timeout and fails rather than hanging.
SET lock_timeout = '2s';
SELECT plan(7);

SELECT pgmq.create('cc_q');
SELECT pgmq.send_batch('cc_q', ARRAY['{"n":1}', '{"n":2}', '{"n":3}']::jsonb[]);
SELECT dblink_connect('peer', peer_connstr());

-- the peer reads message 1 inside an open transaction: it holds that row's lock
SELECT dblink_exec('peer', 'BEGIN');
SELECT is(
    (SELECT id FROM dblink('peer', $$SELECT msg_id FROM pgmq.read('cc_q', 30, 1)$$) AS t(id bigint)),
    1::bigint, 'the peer reads message 1 and keeps its transaction open');

SELECT lives_ok($$SELECT * FROM pgmq.read('cc_q', 30, 1)$$, 'read does not wait for a row another session holds');
SELECT is((SELECT count(*)::int FROM pgmq.q_cc_q WHERE read_ct = 1 AND msg_id = 2), 1,
          'read skipped the locked message 1 and took message 2');

-- while the peer holds 1 and we hold 2 (vt), the only message left is 3
SELECT results_eq($$SELECT msg_id FROM pgmq.read('cc_q', 30, 10)$$, ARRAY[3::bigint],
                  'a second read gets only the message nobody holds');
SELECT dblink_exec('peer', 'COMMIT');

-- nothing was handed out twice
SELECT is((SELECT count(*)::int FROM pgmq.q_cc_q WHERE read_ct > 1), 0, 'no message was delivered twice');

-- pop under a peer's lock: skips as well
SELECT pgmq.send('cc_q', '{"n":4}');
SELECT pgmq.set_vt('cc_q', ARRAY[1, 2, 3]::bigint[], 3600);
SELECT dblink_exec('peer', 'BEGIN');
SELECT is(
    (SELECT count(*)::int FROM dblink('peer', $$SELECT msg_id FROM pgmq.q_cc_q WHERE msg_id = 4 FOR UPDATE$$) AS t(id bigint)),
    1, 'the peer locks message 4');
SELECT is((SELECT count(*)::int FROM pgmq.pop('cc_q')), 0, 'pop skips the message the peer holds');
SELECT dblink_exec('peer', 'ROLLBACK');

SELECT dblink_disconnect('peer');
SELECT pgmq.drop_queue('cc_q');
SELECT * FROM finish();
