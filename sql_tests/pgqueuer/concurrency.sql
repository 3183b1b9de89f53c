-- Two sessions enqueue the same dedupe_key at once: one wins, the other is refused once
-- the first commits; and a row locked by one session is skipped by a SKIP LOCKED pick
-- ordered like pgqueuer's dequeue (priority DESC, id ASC).
SET lock_timeout = '2s';
SELECT plan(5);

SELECT dblink_connect('peer', peer_connstr());
SELECT dblink_exec('peer', 'BEGIN');
SELECT dblink_exec('peer', $$INSERT INTO pgqueuer (priority, entrypoint, status, dedupe_key) VALUES (0, 'cc', 'queued', 'race')$$);
SELECT throws_ok($$INSERT INTO pgqueuer (priority, entrypoint, status, dedupe_key) VALUES (0, 'cc', 'queued', 'race')$$,
                 '55P03', NULL, 'a racing duplicate waits on the peer''s uncommitted row');
SELECT dblink_exec('peer', 'COMMIT');
SELECT throws_ok($$INSERT INTO pgqueuer (priority, entrypoint, status, dedupe_key) VALUES (0, 'cc', 'queued', 'race')$$,
                 '23505', NULL, 'after the peer commits, the duplicate is refused');
SELECT is((SELECT count(*)::int FROM pgqueuer WHERE dedupe_key = 'race'), 1, 'exactly one job for the key');

INSERT INTO pgqueuer (priority, entrypoint, status) VALUES (5, 'cc', 'queued'), (9, 'cc', 'queued');
SELECT dblink_exec('peer', 'BEGIN');
SELECT is((SELECT t.p FROM dblink('peer', $$SELECT priority FROM pgqueuer WHERE entrypoint = 'cc' AND status = 'queued'
                                         ORDER BY priority DESC, id FOR UPDATE SKIP LOCKED LIMIT 1$$) AS t(p int)),
          9, 'the peer holds the highest-priority job');
SELECT is((SELECT priority FROM pgqueuer WHERE entrypoint = 'cc' AND status = 'queued'
           ORDER BY priority DESC, id FOR UPDATE SKIP LOCKED LIMIT 1), 5, 'a second picker skips it and takes the next');
SELECT dblink_exec('peer', 'ROLLBACK');

SELECT dblink_disconnect('peer');
SELECT * FROM finish();
