"""cortex_neuron: one per GPU host; runs models on llama.cpp and streams tokens over NATS."""
