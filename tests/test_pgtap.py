"""pg_prove's JUnit, normalised without losing a result; and proof the suites can fail."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest
from junitparser import Error, Failure, Skipped

from gauntlet import pgtap
from sql_tests import run as sql_run

PLANTED = {
    "good.sql": "BEGIN; SELECT plan(3); SELECT ok(true, 'truth'); SELECT skip('no capability here', 1);"
    " SELECT is(1, 2, 'one is two'); SELECT * FROM finish(); ROLLBACK;",
    "sql_error.sql": "BEGIN; SELECT plan(2); SELECT ok(true, 'first'); SELECT no_such_function(); ROLLBACK;",
    "short_plan.sql": "BEGIN; SELECT plan(3); SELECT ok(true, 'only one'); ROLLBACK;",
    "no_tests.sql": "SELECT 1;",
}


def _prove(harness, directory: Path, dsn: str, system: str):
    xml, stderr = pgtap.prove(directory, dsn, harness.supervisor, f"pg_prove-{system}")
    return pgtap.normalise(xml, stderr, directory, system)


def _cases(result) -> dict[str, object]:
    return {f"{s.name}::{c.name}": c for s in result for c in s}


def test_normalised_junit_keeps_every_result_and_names_every_problem(harness, pgtap_dsn, tmp_path: Path) -> None:
    suites = tmp_path / "planted"
    suites.mkdir()
    for name, text in PLANTED.items():
        (suites / name).write_text(text)
    cases = _cases(_prove(harness, suites, pgtap_dsn, "planted"))

    skipped = cases["sql/planted/good::2"]
    assert isinstance(skipped.result[0], Skipped) and skipped.result[0].message == "no capability here"
    assert isinstance(cases["sql/planted/good::3 - one is two"].result[0], Failure)
    assert cases["sql/planted/good::1 - truth"].is_passed

    sql_error = cases["sql/planted/sql_error::sql_error.sql: plan"].result[0]
    assert isinstance(sql_error, Error) and "no_such_function() does not exist" in sql_error.text
    assert "planned 3 tests but ran 1" in cases["sql/planted/short_plan::short_plan.sql: plan"].result[0].message
    assert isinstance(cases["sql/planted/no_tests::no_tests.sql: plan"].result[0], Error), "zero tests is a failure"
    assert len(cases) == 3 + 2 + 2 + 1  # every TAP result, plus one case per plan problem


def test_unreadable_pg_prove_output_becomes_an_error_per_file(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("")
    (tmp_path / "b.sql").write_text("")
    result = pgtap.normalise("<testsuites><oops", "pg_prove crashed", tmp_path, "x")
    cases = _cases(result)
    assert sorted(cases) == ["sql/x/a::a.sql: plan", "sql/x/b::b.sql: plan"]
    assert all(isinstance(c.result[0], Error) for c in cases.values())


def test_synthetic_init_and_teardown_cases_go_unless_they_carry_an_error(tmp_path: Path) -> None:
    path = tmp_path / "s.sql"
    path.write_text("")
    suite_name = str(path).replace("/", "_").replace(".", "_")
    xml = (
        f'<testsuites><testsuite name="{suite_name}" tests="3">'
        '<testcase name="(init)"/><testcase name="1 - fine"/>'
        '<testcase name="(teardown)"><error message="teardown blew up"/></testcase>'
        "<system-out><![CDATA[1..1\nok 1 - fine\n]]></system-out></testsuite></testsuites>"
    )
    names = sorted(c.name for s in pgtap.normalise(xml, "", tmp_path, "x") for c in s)
    assert names == ["(teardown)", "1 - fine"]


SABOTAGE = {
    # read() that waits for locked rows (no SKIP LOCKED) and the vt index gone
    "pgmq": """
        SELECT pgmq.create('objects_q');
        DROP INDEX pgmq.q_objects_q_vt_idx;
        CREATE OR REPLACE FUNCTION pgmq.read(queue_name text, vt integer, qty integer, conditional jsonb DEFAULT '{}')
        RETURNS SETOF pgmq.message_record LANGUAGE plpgsql AS $$
        BEGIN
          RETURN QUERY EXECUTE format(
            'WITH cte AS (SELECT msg_id FROM pgmq.%I WHERE vt <= clock_timestamp() ORDER BY msg_id LIMIT $1 FOR UPDATE)
             UPDATE pgmq.%I m SET vt = clock_timestamp() + make_interval(secs => $2), read_ct = read_ct + 1
             FROM cte WHERE m.msg_id = cte.msg_id
             RETURNING m.msg_id, m.read_ct, m.enqueued_at, m.last_read_at, m.vt, m.message, m.headers',
            'q_' || queue_name, 'q_' || queue_name) USING qty, vt;
        END $$;""",
    # fetch that ignores priority
    "procrastinate": """
        CREATE OR REPLACE FUNCTION procrastinate_fetch_job_v2(target_queue_names varchar[], p_worker_id bigint)
        RETURNS procrastinate_jobs LANGUAGE sql AS $$
          UPDATE procrastinate_jobs SET status = 'doing', worker_id = p_worker_id
          WHERE id = (SELECT id FROM procrastinate_jobs WHERE status = 'todo' AND queue_name = ANY(target_queue_names)
                      ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
          RETURNING *
        $$;""",
}


@pytest.mark.parametrize("system", sorted(SABOTAGE))
def test_suites_catch_a_sabotaged_schema(harness, system: str, tmp_path: Path) -> None:
    dsn = harness.databases.dsn(sql_run.prepare_database(harness, system))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SABOTAGE[system])
    suites = tmp_path / system
    shutil.copytree(sql_run.SUITES / system, suites)
    if system == "pgmq":  # objects.sql creates this queue itself; the sabotage made it first
        text = (suites / "objects.sql").read_text().replace("SELECT pgmq.create('objects_q');", "")
        (suites / "objects.sql").write_text(text)
    failed = {c.name for c in pgtap.failed_cases(_prove(harness, suites, dsn, system))}
    expected = {
        "pgmq": {"21 - read() has an index on vt", "2 - read does not wait for a row another session holds"},
        "procrastinate": {"2 - fetch takes the highest priority first"},
    }[system]
    assert expected <= failed, f"pg_prove did not report the sabotage; failed: {sorted(failed)}"
