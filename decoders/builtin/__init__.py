"""Built-in decoders, one module per device type or vendor family."""
