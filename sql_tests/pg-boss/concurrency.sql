-- pg-boss's exclusive policy under a race: a second session's insert waits for the first
-- and is refused once it commits; and a job another session holds is skipped by a
-- SKIP LOCKED pick in pg-boss's fetch order (priority DESC, created_on, id).
SET lock_timeout = '2s';
SELECT plan(4);

SELECT pgboss.create_queue('race', '{"policy":"exclusive"}');
SELECT dblink_connect('peer', peer_connstr());
SELECT dblink_exec('peer', 'BEGIN');
SELECT dblink_exec('peer', $$INSERT INTO pgboss.job (name, policy, singleton_key) VALUES ('race', 'exclusive', 'k')$$);
SELECT throws_ok($$INSERT INTO pgboss.job (name, policy, singleton_key) VALUES ('race', 'exclusive', 'k')$$,
                 '55P03', NULL, 'a racing exclusive insert waits on the peer''s uncommitted job');
SELECT dblink_exec('peer', 'COMMIT');
SELECT throws_ok($$INSERT INTO pgboss.job (name, policy, singleton_key) VALUES ('race', 'exclusive', 'k')$$,
                 '23505', NULL, 'after the peer commits, it is refused');

SELECT pgboss.create_queue('pick', '{"policy":"standard"}');
INSERT INTO pgboss.job (name, policy, priority) VALUES ('pick', 'standard', 1), ('pick', 'standard', 9);
SELECT dblink_exec('peer', 'BEGIN');
SELECT is((SELECT t.p FROM dblink('peer', $$SELECT priority FROM pgboss.job WHERE name = 'pick' AND state < 'active'
                                         ORDER BY priority DESC, created_on, id FOR UPDATE SKIP LOCKED LIMIT 1$$) AS t(p int)),
          9, 'the peer holds the priority-9 job');
SELECT is((SELECT priority FROM pgboss.job WHERE name = 'pick' AND state < 'active'
           ORDER BY priority DESC, created_on, id FOR UPDATE SKIP LOCKED LIMIT 1), 1, 'a second picker skips it');
SELECT dblink_exec('peer', 'ROLLBACK');

SELECT dblink_disconnect('peer');
SELECT * FROM finish();
