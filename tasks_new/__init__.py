"""The next attempt: a new task on the same account, on a different image subset."""
