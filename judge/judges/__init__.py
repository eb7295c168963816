"""Judge profiles as users see them: what is configured (no secrets) and whether a judge really answers."""
