"""Model backends: the protocol (`base`), its three engines and the factory that picks one."""
