-- River's table-level contract: states, constraints, unique jobs by bitmask.
BEGIN;
SELECT plan(12);

SELECT lives_ok($$INSERT INTO river_job (args, kind) VALUES ('{}', 'k')$$, 'a minimal job can be inserted');
SELECT throws_ok($$INSERT INTO river_job (args, kind, priority) VALUES ('{}', 'k', 0)$$, '23514', NULL, 'priority 0 is refused');
SELECT throws_ok($$INSERT INTO river_job (args, kind, priority) VALUES ('{}', 'k', 5)$$, '23514', NULL, 'priority 5 is refused');
SELECT throws_ok($$INSERT INTO river_job (args, kind, max_attempts) VALUES ('{}', 'k', 0)$$, '23514', NULL, 'max_attempts 0 is refused');
SELECT throws_ok($$INSERT INTO river_job (args, kind) VALUES ('{}', '')$$, '23514', NULL, 'an empty kind is refused');
SELECT throws_ok($$INSERT INTO river_job (args, kind, state) VALUES ('{}', 'k', 'completed')$$, '23514', NULL,
                 'a finalized state needs finalized_at');
SELECT throws_ok($$INSERT INTO river_job (args, kind, finalized_at) VALUES ('{}', 'k', now())$$, '23514', NULL,
                 'finalized_at is only for finalized states');
SELECT ok(river_job_state_in_bitmask(B'11110101', 'available'), 'bitmask bit 7 is available');
SELECT ok(NOT river_job_state_in_bitmask(B'11111011', 'completed'), 'bit 5 (from the left) clear: completed is outside the mask');

-- unique jobs: a unique_key is unique among jobs whose state is in unique_states
INSERT INTO river_job (args, kind, unique_key, unique_states) VALUES ('{}', 'u', 'key-1', B'11110101');
SELECT throws_ok($$INSERT INTO river_job (args, kind, unique_key, unique_states) VALUES ('{}', 'u', 'key-1', B'11110101')$$,
                 '23505', NULL, 'a second available job with the same unique_key is refused');
UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE unique_key = 'key-1';
SELECT lives_ok($$INSERT INTO river_job (args, kind, unique_key, unique_states) VALUES ('{}', 'u', 'key-1', B'11100101')$$,
                'once the first is in a state outside the mask, the key can be reused');
SELECT is((SELECT count(*)::int FROM river_job WHERE unique_key = 'key-1'), 2, 'both rows exist');

SELECT * FROM finish();
ROLLBACK;
