"""What the user sees: keyboards, texts, handlers, middlewares."""
