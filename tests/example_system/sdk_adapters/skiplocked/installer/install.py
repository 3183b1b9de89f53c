"""skiplocked's schema installer: schema.sql, in one transaction, on $GAUNTLET_DSN.

Idempotent (IF NOT EXISTS / OR REPLACE); all or nothing (one transaction)."""

import os
from pathlib import Path

import psycopg

SCHEMA = Path(__file__).with_name("schema.sql")

with psycopg.connect(os.environ["GAUNTLET_DSN"]) as conn:  # leaving the block commits, or rolls back on error
    conn.execute(SCHEMA.read_text())
print("skiplocked schema installed")
