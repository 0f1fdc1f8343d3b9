"""Business logic. Views and jobs call these; nothing here knows about HTTP."""
