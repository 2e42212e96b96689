"""CVAT accounts for candidates: registered once, role `worker`, never duplicated."""

from __future__ import annotations

import logging

from connection import AsyncCvatClient, CvatRejected
from create_users.db_operations import (
    Candidate,
    get_candidate_by_id,
    reserve_cvat_credentials,
    set_cvat_user_id,
)
from create_users.generation import make_email, make_password, make_username
from db import Database

logger = logging.getLogger(__name__)
CANDIDATE_GROUPS = ("worker",)
MAX_NAME_TRIES = 3


def name_taken(exc: CvatRejected) -> bool:
    """CVAT said the username or the e-mail already belongs to an account."""
    details = exc.details
    if isinstance(details, dict):
        return "username" in details or "email" in details
    return isinstance(details, list) and any("e-mail" in str(d) for d in details)


async def ensure_cvat_account(
    db: Database, cvat: AsyncCvatClient, candidate: Candidate, email_domain: str
) -> Candidate:
    """The candidate's CVAT account, registered and made a worker if that has not happened.

    The name and password are stored before the registration is sent, so a crash or a lost
    answer never leaves an account the database does not know; a retry finds the account by
    its stored name instead of registering a second one.
    """
    if candidate.cvat_user_id is not None and candidate.cvat_deleted_at is None:
        return candidate
    resumed = candidate.cvat_username is not None and candidate.cvat_deleted_at is None
    first, _, last = candidate.full_name.partition(" ")
    for _ in range(MAX_NAME_TRIES):
        if not resumed:
            candidate = await reserve_cvat_credentials(
                db, candidate.id, make_username(candidate.id), make_password())
        assert candidate.cvat_username is not None and candidate.cvat_password is not None
        try:
            user = await cvat.register_user(
                candidate.cvat_username, candidate.cvat_password,
                make_email(candidate.cvat_username, email_domain),
                first_name=first[:150], last_name=last[:150], existing_ok=resumed,
                not_before=candidate.created_at,
            )
            break
        except CvatRejected as exc:
            if not name_taken(exc):
                raise
            # Someone else's account has this name or e-mail: pick another name and retry.
            logger.warning("CVAT name %s is taken by another account; choosing another",
                           candidate.cvat_username)
            resumed = False
    else:
        raise CvatRejected("CVAT refused every new account name; see the CVAT log",
                           status=400)
    await cvat.set_groups(user.id, list(CANDIDATE_GROUPS))
    await set_cvat_user_id(db, candidate.id, user.id)
    logger.info("candidate %s has CVAT account %s (id %s)",
                candidate.id, candidate.cvat_username, user.id)
    refreshed = await get_candidate_by_id(db, candidate.id)
    assert refreshed is not None
    return refreshed
