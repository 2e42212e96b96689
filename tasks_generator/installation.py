"""This deployment's mark on CVAT: a random id kept in the database (migration 0006); its SQL
is in `tasks_generator.repository`."""

from tasks_generator.repository import MARK_BYTES, installation_mark

__all__ = ["MARK_BYTES", "installation_mark"]
