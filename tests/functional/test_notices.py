"""Planning and approving notices over HTTP, on the sample service area."""

from __future__ import annotations

import csv

from shapely.geometry import Point, shape

from incident.settings import BUNDLED_DIR
from tests.support.app import Api
from tests.support.sample import BOX

SAMPLE = BUNDLED_DIR / "sample" / "households.csv"


def expected_sms(box: dict[str, object]) -> tuple[int, int, set[str]]:
    """Naive count from the file: households in the box with an SMS number not opted out,
    one message per distinct number; and the languages among them."""
    area = shape(box)
    numbers: set[str] = set()
    languages: set[str] = set()
    households = 0
    with SAMPLE.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if not area.covers(Point(float(row["lon"]), float(row["lat"]))):
                continue
            households += 1
            if row["sms"] and "sms" not in row["opt_out"].split("|"):
                if row["sms"] not in numbers:
                    languages.add(row["language"])
                numbers.add(row["sms"])
    return households, len(numbers), languages


async def test_plan_preview_and_approve_a_notice(api: Api) -> None:
    inc = await api.declare(area=BOX, title="Main break on Maple St")
    status, planned = await api.call(
        "POST", f"/api/incidents/{inc['id']}/notices",
        json={"template": "boil_water", "channels": ["sms"],
              "facts": {"area": "Maple St and Walnut Rd", "etr": "2026-11-22T18:00:00+00:00"}},
    )  # fmt: skip
    assert status == 201, planned
    notice = planned["notice"]
    households, numbers, languages = expected_sms(BOX)
    assert notice["status"] == "planned" and notice["notice_id"] == f"{inc['id']}-N1"
    assert notice["counts"]["households"] == households
    assert notice["counts"]["by_channel"] == {"sms": numbers}
    previews = planned["previews"]
    assert {p["language_requested"] for p in previews} == languages
    for p in previews:  # a language without templates falls back, and says so
        assert p["fell_back"] == (p["language_used"] != p["language_requested"])
        assert p["language_used"] in ("en", "zh-CN")
    texts = " ".join(p["text"] for p in previews)
    assert "Sampletown Water" in texts and "Maple St and Walnut Rd" in texts
    assert all(p["segments"] >= 1 and p["encoding"] in ("gsm7", "ucs2") for p in previews)
    assert len(previews) == len(languages)

    # Nothing is sent before approval: every delivery is a draft.
    _, deliveries = await api.call("GET", f"/api/incidents/{inc['id']}/deliveries?limit=5", who="rita")
    assert deliveries["counts"] == {"sms": {"draft": numbers}}
    assert all(r["address"].startswith("…") and len(r["address"]) == 5 for r in deliveries["rows"])

    status, approved = await api.call(
        "POST", f"/api/incidents/{inc['id']}/notices/{notice['notice_id']}/approve"
    )
    assert status == 200 and approved["status"] == "approved" and approved["approved_by"] == "alice"
    _, deliveries = await api.call("GET", f"/api/incidents/{inc['id']}/deliveries")
    assert deliveries["counts"] == {"sms": {"planned": numbers}}
    status, again = await api.call(
        "POST", f"/api/incidents/{inc['id']}/notices/{notice['notice_id']}/approve"
    )
    assert status == 409 and "only a planned notice" in again["error"]["message"]
    _, timeline = await api.call("GET", f"/api/incidents/{inc['id']}/timeline")
    types = [e["type"] for e in timeline["events"]]
    # The first notice to households makes the incident public, said on the timeline.
    assert types[-3:] == ["notice_planned", "notice_approved", "made_public"] and timeline["integrity"]["ok"]
    _, listed = await api.call("GET", f"/api/incidents/{inc['id']}/notices")
    assert [n["status"] for n in listed["notices"]] == ["approved"]


async def test_notice_errors(api: Api) -> None:
    inc = await api.declare()
    path = f"/api/incidents/{inc['id']}/notices"
    status, err = await api.call("POST", path, json={"template": "boil_water", "channels": ["sms"],
                                                     "facts": {"area": "Maple St"}})  # fmt: skip
    assert status == 409 and "has no area yet" in err["error"]["message"]
    await api.call("PUT", f"/api/incidents/{inc['id']}/area", json={"geometry": BOX})
    # No public area text anywhere (no facts.area, no description, a drawn area): refused.
    status, err = await api.call("POST", path, json={"template": "boil_water", "channels": ["sms"]})
    assert status == 422 and err["error"]["code"] == "missing_facts", err
    status, err = await api.call("POST", path, json={"template": "tsunami", "channels": ["sms"]})
    assert status == 422 and "template" in err["error"]["message"]
    status, err = await api.call("POST", path, json={"template": "boil_water", "channels": []})
    assert status == 422
    status, err = await api.call("POST", path, json={"template": "boil_water", "channels": ["sms"],
                                                     "facts": {"area": "Maple St", "etr": "2026-11-22T18:00:00"}})  # fmt: skip
    assert status == 422 and "time zone" in err["error"]["message"]
    assert (
        await api.call(
            "POST",
            path,
            who="rita",
            json={"template": "boil_water", "channels": ["sms"], "facts": {"area": "x"}},
        )
    )[0] == 403
    status, _ = await api.call("GET", f"/api/incidents/{inc['id']}/notices/{inc['id']}-N9")
    assert status == 404


async def test_priority_audience_first(api: Api) -> None:
    inc = await api.declare(area=BOX)
    status, planned = await api.call(
        "POST", f"/api/incidents/{inc['id']}/notices",
        json={"template": "main_break", "channels": ["sms", "voice"], "audience": {"priority": ["medical"]},
              "facts": {"area": "Maple St"}},
    )  # fmt: skip
    assert status == 201
    counts = planned["notice"]["counts"]
    assert set(counts["by_priority"]) <= {"medical"}


async def test_a_notice_etr_in_the_past_or_too_far_ahead_is_refused(api: Api) -> None:
    inc = await api.declare()
    await api.call("PUT", f"/api/incidents/{inc['id']}/area", json={"geometry": BOX})
    path = f"/api/incidents/{inc['id']}/notices"
    for etr, code in (
        ("1970-01-01T00:00:00+00:00", "etr_in_past"),
        ("2027-11-22T18:00:00+00:00", "etr_too_far"),
    ):
        body = {"template": "etr_update", "channels": ["sms"], "facts": {"area": "Maple St", "etr": etr}}
        status, err = await api.call("POST", path, json=body)
        assert status == 422 and err["error"]["code"] == code, err
    _, listed = await api.call("GET", path)
    assert listed["notices"] == []
