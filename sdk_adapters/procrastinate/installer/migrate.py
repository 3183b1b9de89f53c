"""Apply the named migration scripts procrastinate ships (procrastinate/sql/migrations of the
installed release) to GAUNTLET_DSN, each in its own transaction, in the order given.

procrastinate has no migrate command: its docs leave applying these files to the user's own
migration tool (pre-migrations before deploying the new release, post-migrations once no old
worker is left). This is the smallest such tool."""

import os
import sys
from pathlib import Path

import psycopg
from procrastinate.schema import SchemaManager

folder = Path(SchemaManager.get_migrations_path())  # what `procrastinate schema --migrations-path` prints
with psycopg.connect(os.environ["GAUNTLET_DSN"]) as conn:
    for name in sys.argv[1:]:
        conn.execute((folder / name).read_text())  # no parameters: the script goes as one simple query
        conn.commit()
        print(f"applied {name}")
