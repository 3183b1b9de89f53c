"""Chaos: the nemesis (faults with heals), seeded schedules, and the chaos scenarios."""
