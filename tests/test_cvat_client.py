"""Contract tests: the CVAT client against the CVAT stand-in over real HTTP."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from PIL import Image, ImageDraw

from config.env import load_settings
from connection import (
    CLOCK_SLACK,
    DEFAULT_LABELS,
    CvatAuthError,
    CvatClient,
    CvatForbidden,
    CvatMisconfigured,
    CvatNotFound,
    CvatRejected,
    CvatTaskProcessingError,
    CvatUnavailable,
    CvatUser,
    CvatVersion,
    task_create_rq_id,
)
from sandbox.cvat import CvatCosts, CvatServer
from sandbox.cvat_client import AsyncSandboxCvatClient
from tests.flow import HANG

ADMIN = ("admin", "Adm1n-Passw0rd")
N_IMAGES = 12


# ----------------------------------------------------------------------------------- helpers


def make_jpegs(count: int, size: tuple[int, int] = (320, 240)) -> list[tuple[str, bytes]]:
    """`count` small JPEG photos of a 'car' with a 'plate'."""
    files = []
    for i in range(count):
        image = Image.new("RGB", size, (40 + 15 * i % 200, 90, 160))
        draw = ImageDraw.Draw(image)
        draw.rectangle((30 + i, 60, 250, 190), fill=(200, 30 + 10 * i % 200, 30))
        draw.rectangle((110, 160, 170, 178), fill=(250, 250, 250))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        files.append((f"car_{i:02d}.jpg", buffer.getvalue()))
    return files


def new_password() -> str:
    return f"Pw-{secrets.token_urlsafe(12)}-9z"


def new_username(tag: str) -> str:
    return f"cand_{tag}_{secrets.token_hex(3)}"


def sync_client(server: CvatServer, username: str = ADMIN[0], password: str = ADMIN[1],
                **kwargs: Any) -> CvatClient:
    options: dict[str, Any] = {"timeout": 5.0, "retries": 3, "backoff": 0.02}
    options.update(kwargs)
    return CvatClient(server.base_url, username, password, **options)


async def start_server(**kwargs: Any) -> CvatServer:
    options: dict[str, Any] = {"admin": ADMIN, "version": "2.73.0", "validate_schema": True}
    options.update(kwargs)
    server = CvatServer(**options)
    await server.start(host="127.0.0.1", port=0)
    return server


@pytest.fixture
async def server() -> AsyncIterator[CvatServer]:
    srv = await start_server()
    try:
        yield srv
    finally:
        await srv.stop()
    assert srv.schema_violations == [], "requests or responses outside CVAT's OpenAPI schema"


@pytest.fixture
async def admin(server: CvatServer) -> AsyncIterator[AsyncSandboxCvatClient]:
    client = AsyncSandboxCvatClient(sync_client(server))
    try:
        yield client
    finally:
        await client.close()


async def make_candidate(admin: AsyncSandboxCvatClient, tag: str) -> tuple[CvatUser, str]:
    username, password = new_username(tag), new_password()
    user = await admin.register_user(username, password, f"{username}@example.com",
                                     "Ivan", "Petrov")
    await admin.set_groups(user.id, ["worker"])
    return user, password


async def make_task(admin: AsyncSandboxCvatClient, count: int = 3,
                    **upload: Any) -> tuple[int, int]:
    """Create a task with `count` images, wait for it; return (task id, job id)."""
    task = await admin.create_task(f"test {secrets.token_hex(4)}")
    rq_id = await admin.upload_images(task.id, make_jpegs(count), **upload)
    ready = await admin.wait_for_data(task.id, rq_id, expected_size=count, timeout=20, poll=0.05)
    jobs = await admin.list_jobs(ready.id)
    assert len(jobs) == 1
    return ready.id, jobs[0].id


def requests_to(server: CvatServer, method: str, pattern: str) -> list[Any]:
    """Entries of the stand-in's request log for this method and path regex."""
    found = []
    for entry in server.request_log:
        m, path = _method_path(entry)
        if m == method and re.search(pattern, path):
            found.append(entry)
    return found


def _method_path(entry: Any) -> tuple[str, str]:
    if isinstance(entry, dict):
        method = entry.get("method", "")
        path = entry.get("path", "")
    elif isinstance(entry, (tuple, list)):
        method, path = entry[0], entry[1]
    else:
        method, path = getattr(entry, "method", ""), getattr(entry, "path", "")
    return str(method).upper(), str(path).split("?")[0]


def annotations_for(labels: list[dict[str, Any]]) -> dict[str, Any]:
    car = next(lb for lb in labels if lb["name"] == "car")
    plate = next(lb for lb in labels if lb["name"] == "plate")
    spec = plate["attributes"][0]["id"]
    shape = {"occluded": False, "z_order": 0, "rotation": 0, "group": 0, "source": "manual",
             "outside": False, "type": "rectangle"}
    return {
        "version": 0,
        "tags": [],
        "shapes": [
            {**shape, "frame": 0, "label_id": car["id"], "points": [30, 60, 250, 190],
             "attributes": []},
            {**shape, "frame": 0, "label_id": plate["id"], "points": [110, 160, 170, 178],
             "attributes": [{"spec_id": spec, "value": "А123ВС77"}]},
            {**shape, "frame": 1, "label_id": car["id"], "points": [35, 60, 250, 190],
             "rotation": 15, "attributes": []},
        ],
        "tracks": [],
    }


# ------------------------------------------------------------------------------------- tests


async def test_full_sequence(server: CvatServer, admin: AsyncSandboxCvatClient,
                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    passwords = [ADMIN[1]]

    version = await admin.server_version()
    assert version == CvatVersion(2, 73, 0) and version.at_least((2, 38))
    me = await admin.check_admin()
    assert me.username == ADMIN[0] and me.is_superuser

    # register: the 201 has no id, the client finds it; role worker verified by the echo
    username, password = new_username("full"), new_password()
    passwords.append(password)
    user = await admin.register_user(username, password, f"{username}@example.com",
                                     "Ivan", "Petrov")
    assert user.username == username and user.id > 0
    assert len(admin.client._session.cookies) == 0  # no candidate session in the admin's jar
    assert len(admin.client._anon_session.cookies) == 0
    assert (await admin.find_user(username)) == user
    assert await admin.find_user(username[:-1]) is None
    worker = await admin.set_groups(user.id, ["worker"])
    assert worker.groups == ("worker",)
    # a repeated registration (e.g. after a lost answer) returns the same account
    again = await admin.register_user(username, password, f"{username}@example.com")
    assert again.id == user.id

    # task with 12 images uploaded in batches of 4 with progress
    name = f"candidate {username} / plates"
    task = await admin.create_task(name)
    assert task.jobs_count == 0 and not task.has_data
    assert (await admin.create_task(name)).id == task.id  # looks first, no duplicate
    progress: list[tuple[int, int]] = []
    rq_id = await admin.upload_images(task.id, make_jpegs(N_IMAGES), batch_size=4,
                                      on_progress=lambda k, n: progress.append((k, n)))
    assert progress == [(0, 12), (4, 12), (8, 12), (12, 12)]
    assert rq_id == task_create_rq_id(version, task.id)
    fractions: list[float] = []
    ready = await admin.wait_for_data(task.id, rq_id, expected_size=N_IMAGES, timeout=20,
                                      poll=0.05, on_progress=fractions.append,
                                      on_progress_in_loop=True)
    assert ready.size == N_IMAGES and ready.jobs_count == 1 and ready.has_data
    meta = await admin.get_task_meta(task.id)
    assert sorted(f["name"] for f in meta["frames"]) == [f"car_{i:02d}.jpg" for i in range(12)]
    labels = await admin.get_labels(task_id=task.id)
    assert {lb["name"] for lb in labels} == {"car", "plate"}
    assert [lb["name"] for lb in DEFAULT_LABELS] == ["car", "plate"]

    # assign the job to the candidate
    jobs = await admin.list_jobs(task.id)
    assert [j.task_id for j in jobs] == [task.id]
    job = await admin.assign_job(jobs[0].id, user.id)
    assert job.assignee_id == user.id and job.assignee_updated_date is not None
    assert (job.start_frame, job.stop_frame) == (0, N_IMAGES - 1)

    # the candidate annotates with their own credentials
    candidate = admin.for_user(username, password)
    try:
        own = await candidate.get_job(job.id)
        assert own.assignee_id == user.id and own.state == "new"
        job_labels = await candidate.get_labels(job_id=job.id)
        assert {lb["id"] for lb in job_labels} == {lb["id"] for lb in labels}
        assert len((await candidate.get_job_meta(job.id))["frames"]) == N_IMAGES
        frame = await candidate.get_frame(job.id, 0)
        assert frame[:2] == b"\xff\xd8" or frame[:4] == b"\x89PNG"
        with pytest.raises(CvatForbidden):
            await candidate.get_task(task.id)  # job-only assignee: 403 on the task
        with pytest.raises(CvatForbidden):
            await candidate.get_labels(task_id=task.id)
        saved = await candidate.put_job_annotations(job.id, annotations_for(job_labels))
        assert len(saved["shapes"]) == 3
    finally:
        await candidate.close()

    # read back as admin
    data = await admin.get_job_annotations(job.id)
    assert len(data["shapes"]) == 3
    plate_attr = [s["attributes"] for s in data["shapes"] if s["attributes"]]
    assert plate_attr[0][0]["value"] == "А123ВС77"
    after = await admin.get_job(job.id)
    assert after.updated_date is not None and after.assignee_updated_date is not None
    assert after.updated_date > after.assignee_updated_date
    xml = await admin.export_job_xml(job.id, timeout=20, poll=0.05)
    assert b"<annotations>" in xml and b"car_00.jpg" in xml
    completed = await admin.update_job(job.id, state="completed")
    assert completed.state == "completed"

    # clean up: idempotent deletions; the deleted candidate can no longer log in
    assert await admin.delete_task(task.id) is True
    assert await admin.delete_task(task.id) is False
    with pytest.raises(CvatNotFound):
        await admin.get_task(task.id)
    assert await admin.delete_user(user.id) is True
    assert await admin.delete_user(user.id) is False
    assert await admin.verify_credentials(username, password) is None

    assert server.schema_violations == []
    for secret in passwords:
        assert secret not in caplog.text


async def test_registration_errors_carry_cvat_messages(admin: AsyncSandboxCvatClient) -> None:
    user, password = await make_candidate(admin, "dup")
    with pytest.raises(CvatRejected) as taken:
        await admin.register_user(user.username, new_password(), "other@example.com")
    assert "already" in str(taken.value) and "username" in taken.value.details
    with pytest.raises(CvatRejected) as taken_raw:  # the server's own answer
        await admin.register_user(user.username, new_password(), "other2@example.com",
                                  existing_ok=False)
    assert taken_raw.value.status == 400 and "username" in taken_raw.value.details
    with pytest.raises(CvatRejected) as weak:
        await admin.register_user(new_username("weak"), "iloveyou", "weak@example.com")
    assert "password1" in weak.value.details and "iloveyou" not in str(weak.value)
    assert "password1 - This password is too common" in str(weak.value)
    with pytest.raises(CvatRejected) as short:
        await admin.register_user("abc", new_password(), "abc@example.com")
    assert "at least 5" in str(short.value)
    with pytest.raises(CvatRejected) as email:
        await admin.register_user(new_username("mail"), new_password(),
                                  f"{user.username}@example.com")
    assert "e-mail" in str(email.value)
    with pytest.raises(CvatRejected) as group:
        await admin.set_groups(user.id, ["nosuchgroup"])
    assert "nosuchgroup" in str(group.value)
    assert password not in str(taken.value)


async def test_get_is_retried_until_the_server_recovers(server: CvatServer,
                                                        admin: AsyncSandboxCvatClient) -> None:
    me = await admin.check_admin()
    task = await admin.create_task(f"retry {secrets.token_hex(3)}")
    server.fail_next("GET", rf"^/api/tasks/{task.id}$", status=503, count=2)
    before = len(requests_to(server, "GET", rf"^/api/tasks/{task.id}$"))
    again = await admin.get_task(task.id)
    assert again.id == task.id
    assert len(requests_to(server, "GET", rf"^/api/tasks/{task.id}$")) - before == 3

    server.fail_next("GET", rf"^/api/tasks/{task.id}$", status=502, count=10)
    with pytest.raises(CvatUnavailable) as exc:
        await admin.get_task(task.id)
    assert exc.value.status == 502 and "4 attempts" in str(exc.value)
    server.clear_faults()

    server.fail_next("GET", rf"^/api/tasks/{task.id}$", drop=True, count=1)
    assert (await admin.get_task(task.id)).id == task.id
    server.fail_next("GET", rf"^/api/tasks/{task.id}$", status=429, count=1)
    assert (await admin.get_task(task.id)).id == task.id
    server.fail_next("PATCH", r"^/api/users/\d+$", status=504, count=1)  # absolute PATCH
    assert (await admin.set_groups(me.id, ["admin"])).groups == ("admin",)


async def test_post_is_not_retried(server: CvatServer, admin: AsyncSandboxCvatClient) -> None:
    await admin.server_version()
    name = f"post {secrets.token_hex(3)}"
    server.fail_next("POST", r"^/api/tasks/?$", status=503, count=1)
    with pytest.raises(CvatUnavailable) as exc:
        await admin.create_task(name)
    assert exc.value.status == 503
    assert len(requests_to(server, "POST", r"^/api/tasks/?$")) == 1
    # calling again is safe: it looks for the task first, then creates it once
    task = await admin.create_task(name)
    assert len(requests_to(server, "POST", r"^/api/tasks/?$")) == 2
    assert [t.id for t in await admin.find_tasks(name=name)] == [task.id]

    # a lost answer to a registration: the client finds the account instead of re-posting
    username, password = new_username("lost"), new_password()
    server.fail_next("POST", r"^/api/auth/register$", drop=True, count=1)
    try:
        user = await admin.register_user(username, password, f"{username}@example.com")
    except CvatUnavailable:
        user = None  # the stand-in dropped it before registering: nothing happened
    posts = len(requests_to(server, "POST", r"^/api/auth/register$"))
    assert posts == 1
    if user is not None:
        assert user.username == username
    else:
        assert await admin.find_user(username) is None


async def test_lost_answer_to_a_post_is_recovered_without_resending(
        server: CvatServer, admin: AsyncSandboxCvatClient) -> None:
    await admin.server_version()
    # the gateway times out but CVAT did create the task / register the user
    name = f"lost {secrets.token_hex(3)}"
    server.fail_next("POST", r"^/api/tasks/?$", status=504, after=True)
    task = await admin.create_task(name)
    assert task.name == name
    assert len(requests_to(server, "POST", r"^/api/tasks/?$")) == 1
    assert [t.id for t in await admin.find_tasks(name=name)] == [task.id]

    username, password = new_username("gw"), new_password()
    server.fail_next("POST", r"^/api/auth/register$", status=502, after=True)
    user = await admin.register_user(username, password, f"{username}@example.com")
    assert user.username == username
    assert len(requests_to(server, "POST", r"^/api/auth/register$")) == 1

    task_id = (await admin.create_task(f"data {secrets.token_hex(3)}")).id
    server.fail_next("POST", r"/data/?$", status=504, after=True)  # the Upload-Start
    with pytest.raises(CvatUnavailable):  # an upload is never re-sent
        await admin.upload_images(task_id, make_jpegs(2))
    assert len(requests_to(server, "POST", rf"^/api/tasks/{task_id}/data/?$")) == 1

    # the answer to Upload-Finish is lost: the client finds the processing request instead
    def lose_finish_answer(done: int, total: int) -> None:
        if done == total:  # called right before Upload-Finish
            server.fail_next("POST", r"/data/?$", status=504, after=True)

    task_id = (await admin.create_task(f"data {secrets.token_hex(3)}")).id
    rq_id = await admin.upload_images(task_id, make_jpegs(2), batch_size=2,
                                      on_progress=lose_finish_answer)
    assert len(requests_to(server, "POST", rf"^/api/tasks/{task_id}/data/?$")) == 3
    assert (await admin.wait_for_data(task_id, rq_id, expected_size=2, poll=0.05)).size == 2
    assert server.schema_violations == []


async def test_hanging_call_ends_by_the_client_timeout(server: CvatServer) -> None:
    client = AsyncSandboxCvatClient(sync_client(server, timeout=1.0, retries=1, backoff=0.01))
    try:
        await client.server_version()
        task = await client.create_task(f"hang {secrets.token_hex(3)}")
        server.fail_next("GET", rf"^/api/tasks/{task.id}$", hang=True, count=1)
        started = time.monotonic()
        assert (await client.get_task(task.id)).id == task.id  # retried after the timeout
        assert 0.9 < time.monotonic() - started < 4

        server.fail_next("POST", r"^/api/tasks/?$", hang=True, count=1)
        started = time.monotonic()
        with pytest.raises(CvatUnavailable) as exc:
            await client.create_task(f"hang2 {secrets.token_hex(3)}")
        assert "no answer within 1 s" in str(exc.value)
        assert time.monotonic() - started < 4
    finally:
        await client.close()


async def test_unreachable_server_is_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = AsyncSandboxCvatClient(CvatClient(f"http://127.0.0.1:{port}", *ADMIN, timeout=2,
                                        retries=2, backoff=0.01))
    try:
        with pytest.raises(CvatUnavailable) as exc:
            await client.check_admin()
        assert "unavailable" in str(exc.value) and ADMIN[1] not in str(exc.value)
    finally:
        await client.close()


async def test_random_errors_are_retried_or_reported() -> None:
    server = await start_server(seed=7)
    client = AsyncSandboxCvatClient(sync_client(server))
    try:
        task = await client.create_task(f"flaky {secrets.token_hex(3)}")
        server.error_rate = 0.3
        outcomes: list[int] = []
        for _ in range(20):
            try:
                assert (await client.get_task(task.id)).id == task.id
                outcomes.append(200)
            except CvatUnavailable as exc:
                # a 500 is a server bug: not retried; 502/503 only after all retries
                assert exc.status == 500 or (
                    exc.status in (502, 503) and "4 attempts" in str(exc))
                outcomes.append(exc.status or 0)
        assert outcomes.count(200) >= 10
        retried = [e for e in server.request_log if e[2] in (502, 503)]
        assert retried, "the seed should have produced some 502/503 answers"
    finally:
        await client.close()
        await server.stop()


async def test_processing_failure_is_loud(server: CvatServer,
                                          admin: AsyncSandboxCvatClient) -> None:
    server.empty_task_failure = True
    task = await admin.create_task(f"empty {secrets.token_hex(3)}")
    rq_id = await admin.upload_images(task.id, make_jpegs(3))
    with pytest.raises(CvatTaskProcessingError) as exc:
        await admin.wait_for_data(task.id, rq_id, expected_size=3, timeout=10, poll=0.05)
    assert f"task {task.id}" in str(exc.value)
    server.empty_task_failure = False


async def test_processing_that_never_ends_is_a_clear_error(server: CvatServer,
                                                          admin: AsyncSandboxCvatClient) -> None:
    server.processing_time = 30.0
    task = await admin.create_task(f"slow {secrets.token_hex(3)}")
    rq_id = await admin.upload_images(task.id, make_jpegs(2))
    started = time.monotonic()
    with pytest.raises(CvatTaskProcessingError) as exc:
        await admin.wait_for_data(task.id, rq_id, expected_size=2, timeout=0.5, poll=0.05)
    assert "within 0 s" in str(exc.value) or "within 1 s" in str(exc.value)
    assert time.monotonic() - started < 3
    server.processing_time = 0.0


async def test_a_long_wait_holds_no_thread(server: CvatServer) -> None:
    # One worker thread only: while a build waits for CVAT to process its images, the same
    # client's other calls still go through; cancelling the wait ends it.
    client = AsyncSandboxCvatClient(sync_client(server), max_workers=1)
    try:
        server.processing_time = 60.0
        task = await client.create_task(f"long {secrets.token_hex(3)}")
        rq_id = await client.upload_images(task.id, make_jpegs(2))
        waiting = asyncio.create_task(client.wait_for_job(task.id, rq_id, expected_size=2,
                                                          poll=0.05))

        deadline = time.monotonic() + HANG
        while len(requests_to(server, "GET", r"^/api/requests/")) < 2:  # the wait is under way
            assert time.monotonic() < deadline, "the wait never polled"
            await asyncio.sleep(0.02)
        for _ in range(3):
            assert (await asyncio.wait_for(client.get_task(task.id), HANG)).id == task.id
        assert not waiting.done()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    finally:
        server.processing_time = 0.0
        await client.close()


async def test_upload_to_a_task_with_data_is_refused(admin: AsyncSandboxCvatClient) -> None:
    task_id, _ = await make_task(admin, 2)
    with pytest.raises(CvatRejected) as exc:
        await admin.upload_images(task_id, make_jpegs(2))
    assert "already has data" in str(exc.value)
    with pytest.raises(ValueError):
        await admin.upload_images(task_id, [("a.jpg", b"x"), ("a.jpg", b"y")])


async def test_worker_cannot_read_another_candidates_work(admin: AsyncSandboxCvatClient) -> None:
    alice, alice_pw = await make_candidate(admin, "alice")
    bob, bob_pw = await make_candidate(admin, "bob")
    task_a, job_a = await make_task(admin)
    task_b, job_b = await make_task(admin)
    await admin.assign_job(job_a, alice.id)
    await admin.assign_job(job_b, bob.id)
    as_alice = admin.for_user(alice.username, alice_pw)
    try:
        assert (await as_alice.get_job(job_a)).assignee_id == alice.id
        with pytest.raises(CvatForbidden):  # job-only assignee: not task staff
            await as_alice.get_task(task_a)
        for call in (as_alice.get_job(job_b), as_alice.get_job_annotations(job_b),
                     as_alice.get_task(task_b), as_alice.get_job_meta(job_b),
                     as_alice.get_labels(job_id=job_b)):
            with pytest.raises((CvatForbidden, CvatNotFound)):
                await call
        with pytest.raises((CvatForbidden, CvatNotFound)):
            await as_alice.put_job_annotations(job_b, {"shapes": []})
        with pytest.raises(CvatForbidden):  # a worker cannot create tasks
            await as_alice.create_task(f"by worker {secrets.token_hex(3)}", existing_ok=False)
        with pytest.raises(CvatForbidden):  # nor change roles
            await as_alice.set_groups(alice.id, ["admin"])
        with pytest.raises(CvatMisconfigured):
            await as_alice.check_admin()
        # unassigning stops the candidate
        await admin.assign_job(job_a, None)
        with pytest.raises(CvatForbidden):
            await as_alice.get_job_annotations(job_a)
        # a deactivated account cannot log in any more
        await admin.set_user_active(alice.id, False)
        with pytest.raises(CvatAuthError):
            await as_alice.get_job(job_a)
    finally:
        await as_alice.close()
    assert bob_pw != alice_pw


async def test_old_version_end_to_end() -> None:
    server = await start_server(version="2.3.0")
    client = AsyncSandboxCvatClient(sync_client(server))
    try:
        version = await client.server_version()
        assert str(version) == "2.3.0" and not version.at_least((2, 4))
        await client.check_admin()
        user, password = await make_candidate(client, "old")
        assert (await client.find_user(user.username)) == (await client.get_user(user.id))
        assert await client.find_user(user.username[:-1]) is None
        task_id, job_id = await make_task(client, 4)
        assert requests_to(server, "GET", rf"^/api/tasks/{task_id}/status$")
        assert not requests_to(server, "GET", r"^/api/requests/")
        await client.assign_job(job_id, user.id)
        candidate = client.for_user(user.username, password)
        try:
            labels = await candidate.get_labels(job_id=job_id)
            await candidate.put_job_annotations(job_id, annotations_for(labels))
        finally:
            await candidate.close()
        assert len((await client.get_job_annotations(job_id))["shapes"]) == 3
        assert await client.delete_task(task_id) and await client.delete_user(user.id)
        assert server.schema_violations == []
    finally:
        await client.close()
        await server.stop()


async def test_admin_without_superuser_is_misconfigured(server: CvatServer,
                                                        admin: AsyncSandboxCvatClient) -> None:
    user, password = await make_candidate(admin, "notadmin")
    await admin.set_groups(user.id, ["admin"])  # admin group, but not a Django superuser
    fake_admin = admin.for_user(user.username, password)
    try:
        with pytest.raises(CvatMisconfigured) as exc:
            await fake_admin.check_admin()
        assert "superuser" in str(exc.value)
        victim = await admin.register_user(new_username("victim"), new_password(),
                                           f"victim{secrets.token_hex(3)}@example.com")
        with pytest.raises(CvatMisconfigured) as ignored:  # 200, but silently ignored
            await fake_admin.set_groups(victim.id, ["worker"])
        assert "silently ignored" in str(ignored.value)
        assert (await admin.get_user(victim.id)).groups == ("user",)
    finally:
        await fake_admin.close()

    wrong = AsyncSandboxCvatClient(sync_client(server, password="Wrong-Passw0rd"))
    try:
        with pytest.raises(CvatMisconfigured) as exc:
            await wrong.check_admin()
        assert "CVAT_ADMIN_PASSWORD" in str(exc.value) and "Wrong-Passw0rd" not in str(exc.value)
    finally:
        await wrong.close()


async def test_progress_can_be_marshalled_to_the_loop(admin: AsyncSandboxCvatClient) -> None:
    loop = asyncio.get_running_loop()
    seen: list[tuple[int, int, bool]] = []

    def record(k: int, n: int) -> None:
        seen.append((k, n, asyncio.get_running_loop() is loop))

    task = await admin.create_task(f"progress {secrets.token_hex(3)}")
    rq_id = await admin.upload_images(task.id, make_jpegs(5), batch_size=2, on_progress=record,
                                      on_progress_in_loop=True)
    await admin.wait_for_data(task.id, rq_id, expected_size=5, timeout=20, poll=0.05)
    await asyncio.sleep(0)
    assert [(k, n) for k, n, _ in seen] == [(0, 5), (2, 5), (4, 5), (5, 5)]
    assert all(in_loop for *_, in_loop in seen)


async def test_server_files_and_settings(tmp_path: Any) -> None:
    for name, content in make_jpegs(3):
        (tmp_path / name).write_bytes(content)
    server = await start_server(share_dir=tmp_path)
    settings = load_settings(environ={
        "BOT_TOKEN": "123456:" + "A" * 35, "CVAT_URL": server.base_url + "/",
        "CVAT_ADMIN_USERNAME": ADMIN[0], "CVAT_ADMIN_PASSWORD": ADMIN[1], "CVAT_TIMEOUT": "7",
    }, env_file=None)
    client = AsyncSandboxCvatClient.from_settings(settings)
    try:
        assert client.client.timeout == 7 and client.client.base_url == server.base_url
        task = await client.create_task(f"share {secrets.token_hex(3)}")
        rq_id = await client.attach_server_files(task.id, ["car_02.jpg", "car_00.jpg"])
        ready = await client.wait_for_data(task.id, rq_id, expected_size=2, poll=0.05)
        frames = (await client.get_task_meta(ready.id))["frames"]
        assert [f["name"] for f in frames] == ["car_00.jpg", "car_02.jpg"]
        bad = await client.create_task(f"share {secrets.token_hex(3)}")
        rq_id = await client.attach_server_files(bad.id, ["missing.jpg"])
        with pytest.raises(CvatTaskProcessingError) as exc:
            await client.wait_for_data(bad.id, rq_id, expected_size=1, poll=0.05)
        assert "missing.jpg" in str(exc.value)
        assert server.schema_violations == []
    finally:
        await client.close()
        await server.stop()


# ------------------------------------------------------------------------ authentication


def hashing_seconds(server: CvatServer) -> float:
    """Server CPU the stand-in spent in its password hasher so far."""
    return server.cpu.spent["hashing"]


async def test_the_password_is_hashed_once_however_many_calls(
        server: CvatServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server.costs = CvatCosts(password_hash=0.01)  # a CVAT that charges for every hashing
    client = AsyncSandboxCvatClient(sync_client(server))
    pooled = client.with_own_connections()
    try:
        await client.check_admin()
        task_id, job_id = await make_task(client)
        await asyncio.gather(*(client.get_job(job_id) for _ in range(5)),
                             *(pooled.get_task(task_id) for _ in range(5)))
        await pooled.users_by_id([1])
    finally:
        await pooled.close()
        await client.close()
    # One sign-in for both clients of the account: CVAT hashed the password once, not per call.
    assert len(requests_to(server, "POST", r"^/api/auth/login$")) == 1
    assert hashing_seconds(server) == pytest.approx(0.01)
    token = server.users_by_name(ADMIN[0]).token
    assert token and token not in caplog.text and ADMIN[1] not in caplog.text


async def test_a_token_deleted_by_a_logout_elsewhere_is_replaced(
        server: CvatServer, admin: AsyncSandboxCvatClient) -> None:
    await admin.check_admin()
    first = server.users_by_name(ADMIN[0]).token
    # Somebody signs the bot's account out (a logout in the web UI deletes its one token).
    out = await asyncio.to_thread(requests.post, f"{server.base_url}/api/auth/logout",
                                  headers={"Authorization": f"Token {first}"}, timeout=5)
    assert out.status_code == 200 and server.users_by_name(ADMIN[0]).token is None
    # The next call, a POST, is refused with 401 (it did nothing), signed in again and sent
    # once more: one task, two sign-ins.
    name = f"after logout {secrets.token_hex(3)}"
    task = await admin.create_task(name, existing_ok=False)
    assert [t.id for t in await admin.find_tasks(name=name)] == [task.id]
    assert [e[2] for e in requests_to(server, "POST", r"^/api/tasks$")] == [401, 201]
    assert len(requests_to(server, "POST", r"^/api/auth/login$")) == 2
    assert server.users_by_name(ADMIN[0]).token not in (None, first)


async def test_an_account_that_cannot_sign_in_any_more_is_an_auth_error(
        server: CvatServer, admin: AsyncSandboxCvatClient) -> None:
    user, password = await make_candidate(admin, "gone")
    candidate = admin.for_user(user.username, password)
    try:
        assert (await candidate.whoami()).id == user.id
        await admin.delete_user(user.id)
        with pytest.raises(CvatAuthError) as exc:  # its token is refused, so is its password
            await candidate.whoami()
        assert password not in str(exc.value)
    finally:
        await candidate.close()


async def test_a_found_task_or_account_older_than_its_row_is_not_taken(
        server: CvatServer, admin: AsyncSandboxCvatClient) -> None:
    name = f"restored {secrets.token_hex(3)}"
    theirs = await admin.create_task(name, existing_ok=False)
    user, password = await make_candidate(admin, "older")
    row_made = datetime.now(UTC) + 2 * CLOCK_SLACK  # a row made well after both
    ours = await admin.create_task(name, not_before=row_made)
    assert ours.id != theirs.id
    with pytest.raises(CvatRejected) as taken:
        await admin.register_user(user.username, password, f"{user.username}@example.com",
                                  not_before=row_made)
    assert "username" in taken.value.details
    # Without a row to compare with (and the right password) the earlier ones are returned.
    assert (await admin.register_user(user.username, password, "x@example.com")).id == user.id


async def test_a_small_upload_is_one_request_and_a_big_one_goes_in_batches_by_size(
        server: CvatServer, admin: AsyncSandboxCvatClient) -> None:
    files = make_jpegs(5)
    sizes = [len(content) for _, content in files]
    two = 2 * max(sizes)
    assert two < 3 * min(sizes)  # so a batch of `two` bytes holds exactly two of these
    for limit, steps, posts in ((sum(sizes), [0, 5], 1), (two, [0, 2, 4, 5], 5)):
        task = await admin.create_task(f"batches {secrets.token_hex(3)}", existing_ok=False)
        progress: list[int] = []
        rq_id = await admin.upload_images(task.id, files, batch_bytes=limit,
                                          on_progress=lambda k, n, seen=progress: seen.append(k))
        assert progress == steps
        assert len(requests_to(server, "POST", rf"^/api/tasks/{task.id}/data/?$")) == posts
        job = await admin.wait_for_job(task.id, rq_id, expected_size=5)
        assert job.task_id == task.id and job.frame_count == 5
    # A lost answer to the single request: the processing request is found, nothing re-sent.
    task = await admin.create_task(f"lost single {secrets.token_hex(3)}", existing_ok=False)
    server.fail_next("POST", r"/data/?$", status=504, after=True)
    rq_id = await admin.upload_images(task.id, files, batch_bytes=sum(sizes))
    assert len(requests_to(server, "POST", rf"^/api/tasks/{task.id}/data/?$")) == 1
    assert (await admin.wait_for_job(task.id, rq_id, expected_size=5)).frame_count == 5
