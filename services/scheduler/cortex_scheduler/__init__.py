"""cortex_scheduler: every load, unload and pin decision in the fleet."""
