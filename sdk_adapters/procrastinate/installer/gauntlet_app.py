"""The procrastinate App its CLI needs for `schema --apply`, connected to GAUNTLET_DSN."""

import os

from procrastinate import App, PsycopgConnector

app = App(connector=PsycopgConnector(conninfo=os.environ["GAUNTLET_DSN"]))
