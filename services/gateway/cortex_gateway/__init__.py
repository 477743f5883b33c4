"""cortex_gateway: the OpenAI- and Anthropic-compatible HTTP edge (Litestar)."""
