"""The scoring engine, independent of HTTP: samples, verdicts, judge backends, the Scorer, cache, store."""
