#!/bin/sh
# A Python SDK's own virtualenv (the build of its manifest): `venv.sh PYTHON DIR LOCK` makes DIR with
# PYTHON's interpreter from LOCK alone, as a user who installs only that SDK has it. The harness virtualenv holds every
# SDK's pins and more, and an SDK that imports what it finds (pgmq imports its SQLAlchemy
# client whenever SQLAlchemy is installed) would pay for, and be judged with, what its users
# do not have. `pip check` proves the lock complete.
set -eu
python=$1
dir=$2
lock=$3
"$python" -m venv --clear "$dir"
"$dir/bin/python" -m pip --disable-pip-version-check -q install --no-deps -r "$lock"
"$dir/bin/python" -m pip --disable-pip-version-check check
