"""Gauntlet's harness core: embedded PostgreSQL, process supervision, SDK manifests.

Importing the package itself needs only the standard library, so the bootstrap can run
before the virtualenv exists.
"""
