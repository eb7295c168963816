"""Trainer adapters: reward functions for TRL, verl and OpenRLHF that call a running rubric-judge server.

- :mod:`judge.adapters.trl`: async reward functions with ``GRPOTrainer``'s signature (aggregate or per axis).
- :mod:`judge.adapters.verl`: an async ``compute_score`` for verl's custom reward function.
- :mod:`judge.adapters.openrlhf_reward_func`: a ``reward_func.py`` for ``--reward.remote_url``; it needs only
  httpx, so the file can be copied to a trainer without this package.

They import neither the trainers nor the server's stack; each process shares one pooled HTTP client.
"""
