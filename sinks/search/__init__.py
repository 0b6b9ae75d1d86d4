"""The search index of orders: documents, mapping, engine backends, sink and rebuild."""
