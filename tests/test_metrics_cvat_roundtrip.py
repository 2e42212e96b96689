"""Annotations made on the CVAT stand-in grade the same read over REST and as an XML export."""

from __future__ import annotations

from typing import Any

from sandbox.cvat import CvatServer
from sandbox.cvat_client import AsyncSandboxCvatClient
from tasks_metrics.cvat_xml import parse_cvat_xml
from tasks_metrics.metrics import grade
from tasks_metrics.rest import from_cvat_rest
from tasks_metrics.types import TaskAnnotations
from tests.bench.tasks import DEFAULT_SET_XML
from tests.conftest import CVAT_ADMIN_PASSWORD, CVAT_ADMIN_USERNAME

IMAGES = ["scene_001.jpg", "scene_002.jpg", "scene_003.jpg"]
CYRILLIC = dict(zip("ABCEHKMOPTXY", "АВСЕНКМОРТХУ", strict=True))


def _candidate_payload(gt: TaskAnnotations, frames: list[str], labels: list[dict[str, Any]],
                       ) -> dict[str, Any]:
    """A plausible candidate's work: shifted boxes, one rotated car, a polygon plate, a plate
    typed with a Cyrillic look-alike, one missed plate, one extra car, and a car tracked across
    frames 0..2 with a keyframe at each end (interpolated in between)."""
    label_id = {lb["name"]: lb["id"] for lb in labels}
    spec_id = next(a["id"] for lb in labels if lb["name"] == "plate" for a in lb["attributes"])
    shapes: list[dict[str, Any]] = []

    def shape(frame: int, label: str, kind: str, points: list[float], rotation: float = 0.0,
              text: str | None = None) -> None:
        shapes.append({
            "type": kind, "frame": frame, "label_id": label_id[label], "points": points,
            "rotation": rotation, "occluded": False, "outside": False, "z_order": 0,
            "group": 0, "source": "manual",
            "attributes": [] if text is None else [{"spec_id": spec_id, "value": text}],
        })

    for frame, name in enumerate(frames):
        for index, s in enumerate(gt.images[name].shapes):
            x0, y0, x1, y1 = s.points
            if s.label == "car":
                rotation = 8.0 if (frame, index) == (1, 0) else 0.0
                shape(frame, "car", "rectangle", [x0 + 3, y0 - 2, x1 + 3, y1 - 2], rotation)
            elif frame == 0 and index == len(gt.images[name].shapes) - 1:
                continue  # a missed plate
            elif frame == 0:
                shape(frame, "plate", "polygon", [x0, y0, x1 + 1, y0, x1, y1, x0 - 1, y1],
                      text=s.text)
            else:
                # On the last frame the first letter is typed with its Cyrillic twin.
                text = CYRILLIC[s.text[0]] + s.text[1:] if frame == 2 else s.text
                shape(frame, "plate", "rectangle", [x0 + 1, y0, x1 + 1, y1], text=text)
    shape(2, "car", "rectangle", [5.0, 5.0, 60.0, 40.0])  # extra
    track_box = [400.0, 20.0, 470.0, 60.0]
    track = {
        "frame": 0, "label_id": label_id["car"], "group": 0, "source": "manual",
        "attributes": [], "shapes": [
            {"type": "rectangle", "frame": 0, "points": track_box, "rotation": 0.0,
             "occluded": False, "outside": False, "z_order": 0, "attributes": []},
            {"type": "rectangle", "frame": 2, "points": [420.0, 30.0, 490.0, 70.0],
             "rotation": 0.0, "occluded": False, "outside": False, "z_order": 0,
             "attributes": []},
        ],
    }
    return {"version": 0, "tags": [], "shapes": shapes, "tracks": [track]}


def _without_refs(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_refs(v) for k, v in value.items() if k != "ref"}
    if isinstance(value, list):
        return [_without_refs(v) for v in value]
    return value


async def test_xml_export_grades_the_same_as_rest(cvat: CvatServer) -> None:
    full_gt = parse_cvat_xml(DEFAULT_SET_XML)
    gt = TaskAnnotations({name: full_gt.images[name] for name in IMAGES})
    admin = AsyncSandboxCvatClient.connect(cvat.base_url, CVAT_ADMIN_USERNAME,
                                           CVAT_ADMIN_PASSWORD)
    images_dir = DEFAULT_SET_XML.parent / "images"
    try:
        user = await admin.register_user("cand_roundtrip", "Round-Trip-Passw0rd!",
                                         "roundtrip@example.com")
        await admin.set_groups(user.id, ["worker"])
        task = await admin.create_task("roundtrip task")
        rq_id = await admin.upload_images(task.id, [(n, (images_dir / n).read_bytes())
                                                    for n in IMAGES])
        await admin.wait_for_data(task.id, rq_id, expected_size=len(IMAGES))
        job = (await admin.list_jobs(task.id))[0]
        await admin.assign_job(job.id, user.id)

        candidate = admin.for_user("cand_roundtrip", "Round-Trip-Passw0rd!")
        meta = await candidate.get_job_meta(job.id)
        frames = [f["name"] for f in meta["frames"]]
        labels = await candidate.get_labels(job_id=job.id)
        await candidate.put_job_annotations(job.id, _candidate_payload(gt, frames, labels))
        await candidate.close()

        rest = from_cvat_rest(await admin.get_job_annotations(job.id),
                              await admin.get_labels(job_id=job.id), meta["frames"],
                              meta.get("deleted_frames", ()), meta.get("start_frame", 0))
        exported = parse_cvat_xml(await admin.export_job_xml(job.id))
    finally:
        await admin.close()

    by_rest, by_xml = grade(gt, rest).to_dict(), grade(gt, exported).to_dict()
    # Everything but "ref", which says where an object came from ("shape 7" vs "xml #3").
    assert _without_refs(by_rest) == _without_refs(by_xml)
    # The work really has the intended mistakes, so the comparison is not between two empties.
    assert by_rest["per_class"]["plate"]["missed"] == 1
    assert by_rest["per_class"]["car"]["extra"] >= 1
    reasons = {p["reason"] for p in by_rest["plates"] if not p["correct"]}
    assert {"missing", "lookalike"} <= reasons
    assert 0.5 < by_rest["car_iou"] < 1.0
    # The track was expanded on the middle frame, where no keyframe was sent.
    middle = rest.images[frames[1]]
    assert any(s.points == (410.0, 25.0, 480.0, 65.0) for s in middle.shapes)
