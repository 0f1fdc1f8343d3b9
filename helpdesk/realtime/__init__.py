"""Socket.IO namespaces, rooms, event names and payloads."""
