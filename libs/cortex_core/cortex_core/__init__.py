"""cortex_core: service plumbing shared by gateway, neuron and scheduler."""
