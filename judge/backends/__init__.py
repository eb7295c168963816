"""Judge backends: an OpenAI-compatible LLM, the structure rules, the local reward model."""
