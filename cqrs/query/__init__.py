"""The query service: HTTP reads over the read models, read-your-writes, a command gateway."""
