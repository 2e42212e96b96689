"""The presentation layer: every text and card the bot shows, rendered from typed objects by
pure functions of the reader's `Texts` (and the data), so handlers only parse, call a use case,
render and reply."""
