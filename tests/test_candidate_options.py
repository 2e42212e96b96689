"""Settings that change the candidate's journey: cooldown, showing the score, share images."""

from __future__ import annotations

import re

from config.env import PROJECT_DIR
from sandbox.candidate import annotate
from sandbox.cvat import CvatServer
from sandbox.telegram import TelegramServer, TelegramUser
from tests.flow import get_task, submit


async def test_cooldown_and_score_shown(app_with, telegram: TelegramServer) -> None:
    await app_with(attempt_cooldown_minutes=30, show_score=True)
    user: TelegramUser = telegram.user(4001, first_name="Kim", language_code="en")
    login = await get_task(user)
    # Every plate typed in lower case: the boxes are perfect, the texts are all wrong.
    await annotate(login, plate_texts=_lowercase_plates())
    await submit(user)
    thanks = await user.expect_edit("Thank you!", timeout=20)
    # The old averaged score (0.67) called this borderline; the plate text gate fails it.
    assert "❌ Your result is below the pass mark." in thanks.text
    assert "❌ plate texts right: 0% (needed: 90%)" in thanks.text
    # The wait is said when a new attempt is offered, before the candidate commits to it.
    await user.send("🔁 New attempt")
    wait = await user.expect_message("You can start the next attempt in about", timeout=10)
    minutes = re.search(r"in about (\d+) minutes?", wait.text)
    assert minutes is not None and 1 <= int(minutes.group(1)) <= 30
    assert "UTC time" in wait.text and not wait.buttons
    await user.press_data("t1:gon")  # an old "Yes, start a new attempt" is refused all the same
    await user.expect_message("You can start the next attempt in about", timeout=10)


def _lowercase_plates() -> dict[str, str]:
    from sandbox.candidate import TASK_SET

    return {s.text: s.text.lower() for image in TASK_SET.ground_truth.images.values()
            for s in image.shapes if s.label == "plate"}


async def test_images_from_cvat_share(app_with, telegram: TelegramServer,
                                      cvat: CvatServer) -> None:
    cvat.share_dir = PROJECT_DIR / "media" / "task_sets"
    await app_with(cvat_image_source="share", cvat_share_dir="default/images")
    user = telegram.user(4002, first_name="Lee", language_code="en")
    login = await get_task(user)
    _, frames = await annotate(login)
    assert len(frames) == 12
    uploads = [entry for entry in cvat.request_log if entry[0] == "POST" and "/data" in entry[1]]
    assert len(uploads) == 1  # one request: the share's paths, no image bytes
