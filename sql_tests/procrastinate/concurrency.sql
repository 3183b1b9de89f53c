-- Two sessions fetching with procrastinate_fetch_job_v2: the one that finds a row locked by
-- the other skips it (SKIP LOCKED) instead of waiting, and no job is handed out twice.
SET lock_timeout = '2s';
SELECT plan(5);

CREATE TEMP TABLE w AS SELECT worker_id FROM procrastinate_register_worker_v1();
SELECT procrastinate_defer_jobs_v1(ARRAY[
    ROW('cc', 'task', 0, NULL, NULL, '{}'::jsonb, NULL)::procrastinate_job_to_defer_v1,
    ROW('cc', 'task', 0, NULL, NULL, '{}'::jsonb, NULL)::procrastinate_job_to_defer_v1,
    ROW('cc', 'task', 0, NULL, NULL, '{}'::jsonb, NULL)::procrastinate_job_to_defer_v1]);
CREATE TEMP TABLE ids AS SELECT id FROM procrastinate_jobs WHERE queue_name = 'cc' ORDER BY id;

SELECT dblink_connect('peer', peer_connstr());
SELECT dblink_exec('peer', 'BEGIN');
SELECT is(
    (SELECT id FROM dblink('peer', format($$SELECT (procrastinate_fetch_job_v2(ARRAY['cc']::varchar[], %s)).id$$,
                                           (SELECT worker_id FROM w))) AS t(id bigint)),
    (SELECT min(id) FROM ids), 'the peer fetches the first job and keeps its transaction open');

SELECT is((procrastinate_fetch_job_v2(ARRAY['cc']::varchar[], (SELECT worker_id FROM w))).id,
          (SELECT min(id) + 1 FROM ids), 'our fetch skips the job the peer holds and takes the next one');
SELECT is((procrastinate_fetch_job_v2(ARRAY['cc']::varchar[], (SELECT worker_id FROM w))).id,
          (SELECT max(id) FROM ids), 'and then the last one');
SELECT ok((procrastinate_fetch_job_v2(ARRAY['cc']::varchar[], (SELECT worker_id FROM w))).id IS NULL,
          'nothing is left for us: the peer''s job is not handed out twice');
SELECT dblink_exec('peer', 'COMMIT');
SELECT is((SELECT count(*)::int FROM procrastinate_jobs WHERE queue_name = 'cc' AND status = 'doing'), 3,
          'all three jobs are doing, each exactly once');

SELECT dblink_disconnect('peer');
SELECT * FROM finish();
