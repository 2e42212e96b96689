"""HR's heavy work is a worker's job: with no worker running, the export is acknowledged and
waits; it arrives, whole, once a worker starts (the bot's process builds no file itself), and
the queue keeps no copy of it."""

from __future__ import annotations

import asyncio
import io

import openpyxl

from bot_files.jobs import load_outcome, storable
from connection import CvatError, CvatRejected, CvatUnavailable
from db import Database
from tests.fast.chat import FastTelegram
from tests.steps import open_menu
from tests.test_hr_export import seed_several


async def test_an_export_waits_for_a_worker_and_arrives_when_one_starts(
    telegram: FastTelegram, db: Database
) -> None:
    await telegram.stop()  # the bot alone, as with WORKERS=0 and no worker elsewhere yet
    await telegram.start(worker=False)
    await seed_several(db)
    await db.execute("INSERT INTO trainingdata_whitelist (telegram_id) VALUES (900060)")
    hr = telegram.user(900_060, first_name="Hanna")
    await open_menu(hr)
    # The press returns once the bot has handled it: here, when a worker has made the files.
    pressing = asyncio.create_task(hr.press("📊 All candidates"))
    await hr.expect_message("Preparing the export")
    await hr.expect_nothing(within=1.0)  # queued: no summary, no file, no error
    assert not any(m.document for m in hr.messages)

    await telegram.start_worker()
    summary = await hr.expect_edit("All candidates")
    assert "Candidates: 4" in summary.text
    xlsx = (await hr.expect_message(".xlsx")).document
    csv = (await hr.expect_message(".csv")).document
    assert xlsx is not None and csv is not None
    book = openpyxl.load_workbook(io.BytesIO(xlsx.data))
    assert "Candidates" in book.sheetnames
    assert "Пётр Two".encode() in csv.data
    await pressing
    # The files hold personal data: the job that carried them is gone once they were sent.
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


def test_a_cvat_error_raised_in_a_worker_reaches_the_bot_as_itself() -> None:
    # The handlers answer "CVAT trouble" on a CvatError: a worker's must come back as one,
    # not as a JobFailed the unpickler made of a class it refused.
    for error in (CvatUnavailable("CVAT is down"), CvatRejected("too similar", status=400)):
        back = load_outcome(storable(error)[0])
        assert type(back) is type(error) and isinstance(back, CvatError)
        assert str(back) == str(error)
