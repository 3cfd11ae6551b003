"""Hostile input and fault tolerance: repositories that attack, writers that race, kills that crash.

``repos`` builds the hostile repositories, ``integrity`` checks a library file
after the fact, ``worker`` is the program four concurrent users run. The
long versions of these tests are ``benchmarks/reliability.py``; the figures
are in ``docs/reliability.md``.
"""
