"""The OpenAI-compatible judge: prompts, output parsing, logprob scores and retries, grouped by concern."""
