"""What every table shares: the declarative base with its naming convention, and the column types.

ORM models of every feature (``judge/store/models.py``, ``judge/jobs/models.py``, ...) import from ``judge.db.base``, so
no feature's models import another's just to reach the base.
"""
