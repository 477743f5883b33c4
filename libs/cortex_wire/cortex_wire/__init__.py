"""cortex_wire: the bus contract. Pure: Structs, codec and subject names; no I/O, no clock."""
