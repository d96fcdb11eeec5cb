"""The HTTP API: thin handlers over `engine`, Redis reads, and raw-input writes."""
