"""PGMQ's schema from the SQL file PyPI's pgmq ships (install_pgmq_from_sql): no CREATE EXTENSION."""

import os

import pgmq

print("pgmq", pgmq.install_pgmq_from_sql(dsn=os.environ["GAUNTLET_DSN"]))
