"""Forms of the core, one module per area; each validates input and gives a message per field."""
