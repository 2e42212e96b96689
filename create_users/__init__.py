"""CVAT accounts for candidates, the `candidates` table, and who the bot's users are."""
