"""The email channel end to end, against a real SMTP server on loopback: approve -> Kafka
notify jobs -> senders -> SMTP, exactly once per address, in each household's language;
4xx retried, 5xx final; a re-run or a restart never sends twice."""

from __future__ import annotations

import asyncio
import csv
import logging
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from incident.adapters.smtp import EmailSender
from incident.deliveries.records import Delivery
from incident.deliveries.states import DeliveryState
from incident.keys import NOTIFY, STORE
from incident.settings import BUNDLED_DIR
from tests.support.app import Api, Apps
from tests.support.env import kafka_env
from tests.support.sample import BOX
from tests.support.smtp import SmtpServer, smtp_server
from tests.support.wait import wait_until

S = DeliveryState
HEADER = ["account_id", "lon", "lat", "address", "language", "sms", "voice", "app_token", "priority",
          "opt_out", "email", "needs"]  # fmt: skip
#: Households inside BOX: addresses and languages (a French speaker reads the default, en).
HOMES = [
    ("E-1", "en", "ann@example.org", ""),
    ("E-2", "zh-CN", "wei@Example.ORG", ""),
    ("E-3", "fr", "luc@example.org", ""),
    ("E-4", "en", "gone@example.org", "email"),  # opted out of email
    ("E-5", "en", "ann@example.org", ""),  # shares E-1's address: one email for both
    ("E-6", "es", "", ""),  # no address
]
ADDRESSES = {"ann@example.org": "en", "wei@example.org": "zh-CN", "luc@example.org": "fr"}


@pytest.fixture
def households(tmp_path: Path) -> Path:
    path = tmp_path / "households.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i, (account, language, email, opt_out) in enumerate(HOMES):
            out.writerow([account, f"{-85.55 + i * 0.001:.6f}", "38.03", f"{i} Maple St", language, "", "", "",
                          "", opt_out, email, ""])  # fmt: skip
    return path


async def email_app(apps: Apps, smtp: SmtpServer, households: Path, **more: str) -> Api:
    return await apps.make(
        send=True, system_clock=True, INCIDENT_AREA__HOUSEHOLDS=str(households),
        INCIDENT_EMAIL__MESSAGES_PER_SECOND="500", INCIDENT_NOTIFY__RETRY_BASE_S="0.05",
        **smtp.env(), **more,
    )  # fmt: skip


async def plan_and_approve(api: Api, template: str = "main_break") -> tuple[str, dict[str, Any]]:
    inc = await api.declare(area=BOX)
    status, planned = await api.call(
        "POST",
        f"/api/incidents/{inc['id']}/notices",
        json={"template": template, "channels": ["email"], "facts": {"area": "Maple St"}},
    )
    assert status == 201, planned
    notice = planned["notice"]
    status, body = await api.call("POST", f"/api/incidents/{inc['id']}/notices/{notice['notice_id']}/approve")
    assert status == 200, body
    return inc["id"], notice


async def deliveries(api: Api, incident_id: str) -> list[Delivery]:
    return await api.client.app[STORE].list_deliveries(incident_id, "", 10_000)


async def all_final(api: Api, incident_id: str) -> bool:
    rows = await deliveries(api, incident_id)
    return bool(rows) and all(r.state in (S.delivered, S.failed) for r in rows)


async def test_a_notice_reaches_every_address_once_in_its_language(
    apps: Apps, households: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with smtp_server() as smtp:
        api = await email_app(apps, smtp, households)
        with caplog.at_level(logging.DEBUG):
            incident_id, notice = await plan_and_approve(api)
            await wait_until(lambda: all_final(api, incident_id), "every email handed over")
        # The dispatcher approved what they read: subject and body per language.
        assert notice["channels"] == ["email"] and notice["counts"]["by_channel"] == {"email": 3}
        assert notice["counts"]["opted_out"] == {"email": 1} and notice["counts"]["shared_address"] == {
            "email": 1
        }
        previews = {p["language_requested"]: p for p in notice["previews"]}
        assert previews["en"]["title"] == "Sampletown Water: water main break in Maple St"
        assert [previews[t]["households"] for t in ("en", "zh-CN", "fr")] == [1, 1, 1]
        assert previews["fr"]["language_used"] == "en" and previews["fr"]["fell_back"]
        assert previews["zh-CN"]["text"].startswith("Subject: 【Sampletown Water】Maple St供水管道爆管\n\n")

        got = smtp.recorder.received
        assert Counter(r.to for r in got) == dict.fromkeys(ADDRESSES, 1)  # every address once
        for r in got:
            language = ADDRESSES[r.to]
            assert r.message["Content-Language"] == previews[language]["language_used"]
            assert r.subject == previews[language]["title"]
            assert r.body == previews[language]["body"]
            assert r.sender == "alerts@sampletown.example"
            assert r.message["Auto-Submitted"] == "auto-generated"
        rows = await deliveries(api, incident_id)
        assert {r.state for r in rows} == {S.delivered} and {r.channel for r in rows} == {"email"}
        assert {r.carrier_sid for r in rows} == {str(r.message["Message-ID"]) for r in got}

        _, progress = await api.call("GET", f"/api/incidents/{incident_id}/deliveries")
        assert progress["counts"]["email"] == {"delivered": 3}
        async with api.client.get("/metrics") as resp:
            metrics = await resp.text()
        assert 'channel="email",state="delivered"' in metrics
        # The service's own log lines (the test server's "mail.log" logs what it receives).
        logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail.log"))
        for address in ADDRESSES:
            assert address not in metrics and address not in logged


async def test_a_4xx_is_retried_and_then_delivered_once(apps: Apps, households: Path) -> None:
    async with smtp_server() as smtp:
        api = await email_app(apps, smtp, households)
        smtp.recorder.fail_next("451 4.3.0 Try again later", count=2)
        smtp.recorder.fail_next("452 4.2.2 Mailbox full", count=1, at="RCPT")
        incident_id, _ = await plan_and_approve(api)
        await wait_until(lambda: all_final(api, incident_id), "every email handed over")
        rows = await deliveries(api, incident_id)
        assert {r.state for r in rows} == {S.delivered}
        assert sum(r.attempts for r in rows) == len(rows) + 3  # three refusals, each tried again
        assert Counter(r.to for r in smtp.recorder.received) == dict.fromkeys(ADDRESSES, 1)


async def test_a_5xx_is_final(apps: Apps, households: Path) -> None:
    async with smtp_server() as smtp:
        api = await email_app(apps, smtp, households, INCIDENT_EMAIL__CONNECTIONS="1")
        smtp.recorder.fail_next("550 5.1.1 No such user", at="RCPT")
        smtp.recorder.fail_next("554 5.6.0 Message refused")
        incident_id, _ = await plan_and_approve(api)
        await wait_until(lambda: all_final(api, incident_id), "every email handed over")
        rows = await deliveries(api, incident_id)
        failed = sorted((r.error_code, r.attempts) for r in rows if r.state is S.failed)
        assert failed == [("550", 1), ("554", 1)]  # not tried again
        assert len(smtp.recorder.received) == 1 and smtp.recorder.data_calls == 2


async def test_a_server_refusing_the_sender_is_retried_and_seen(
    apps: Apps, households: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with smtp_server() as smtp:
        api = await email_app(apps, smtp, households, INCIDENT_EMAIL__CONNECTIONS="1")
        smtp.recorder.fail_next("530 5.7.0 Authentication required", count=2, at="MAIL")
        with caplog.at_level(logging.WARNING):
            incident_id, _ = await plan_and_approve(api)
            await wait_until(lambda: all_final(api, incident_id), "every email handed over")
        rows = await deliveries(api, incident_id)
        assert {r.state for r in rows} == {S.delivered}
        assert sum(r.attempts for r in rows) == len(rows) + 2  # each refusal tried again
        assert Counter(r.to for r in smtp.recorder.received) == dict.fromkeys(ADDRESSES, 1)
        assert "SMTP server refused the sender (530)" in caplog.text
        async with api.client.get("/metrics") as resp:
            metrics = await resp.text()
        assert 'incident_email_server_refusals_total{step="sender"} 2.0' in metrics


async def test_a_rerun_or_a_restart_never_sends_twice(apps: Apps, households: Path) -> None:
    broker_env = kafka_env(apps.broker, send=True)
    async with smtp_server() as smtp:
        first = await email_app(apps, smtp, households, kafka=broker_env)
        incident_id, _ = await plan_and_approve(first)
        await wait_until(lambda: all_final(first, incident_id), "every email handed over")
        engine = first.client.app[NOTIFY].engine
        rows = await deliveries(first, incident_id)
        assert await asyncio.gather(*(engine.send(r.delivery_id) for r in rows)) == [None] * len(rows)
        await first.client.close()

        second = await email_app(apps, smtp, households, kafka=broker_env,
                                 INCIDENT_NOTIFY__REQUEUE_S="1", INCIDENT_NOTIFY__SENDING_TIMEOUT_S="1")  # fmt: skip
        await second.client.app[NOTIFY].engine.requeue_lost(0.0)
        await second.client.app[NOTIFY].engine.reconcile()
        await asyncio.sleep(0.5)  # the second instance's loops have had their look
        assert Counter(r.to for r in smtp.recorder.received) == dict.fromkeys(ADDRESSES, 1)
        assert {r.state for r in await deliveries(second, incident_id)} == {S.delivered}


async def test_a_fan_out_cut_short_mid_email_is_never_sent_twice(apps: Apps, households: Path) -> None:
    broker_env = kafka_env(apps.broker, send=True)
    async with smtp_server() as smtp:
        smtp.recorder.delay_s = 1.0  # every DATA is in flight when the instance goes away
        first = await email_app(apps, smtp, households, kafka=broker_env)
        incident_id, _ = await plan_and_approve(first)
        await wait_until(lambda: asyncio.sleep(0, smtp.recorder.data_calls > 0), "an email under way")
        await first.client.close()
        smtp.recorder.delay_s = 0.0

        second = await email_app(apps, smtp, households, kafka=broker_env,
                                 INCIDENT_NOTIFY__REQUEUE_S="1", INCIDENT_NOTIFY__SENDING_TIMEOUT_S="1",
                                 INCIDENT_NOTIFY__SENDER_LEASE_S="1")  # fmt: skip
        await wait_until(lambda: all_final(second, incident_id), "every email settled", limit=30)
        await asyncio.sleep(1.2)  # the messages cut short would have arrived by now
        sent = Counter(r.to for r in smtp.recorder.received)
        assert set(sent.values()) <= {1}, "a duplicate: some address got the notice twice"
        rows = await deliveries(second, incident_id)
        # Each one either went (once) or, cut short mid-DATA, was given up rather than repeated.
        for r in rows:
            assert r.state is S.delivered or (r.state is S.failed and r.error_code == "outcome_unknown"), r
        assert sum(r.state is S.delivered for r in rows) <= len(sent)


async def test_one_email_that_cannot_go_never_holds_up_the_others(
    apps: Apps, households: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = EmailSender.send

    async def send(self: EmailSender, to: str, *args: Any, **kwargs: Any) -> str:
        if to == "wei@example.org":
            raise RuntimeError("a bug in the sender")  # whatever goes wrong for one delivery
        return await real(self, to, *args, **kwargs)

    monkeypatch.setattr(EmailSender, "send", send)
    async with smtp_server() as smtp:
        api = await email_app(apps, smtp, households, INCIDENT_EMAIL__CONNECTIONS="1",
                              INCIDENT_NOTIFY__SENDING_TIMEOUT_S="600")  # fmt: skip
        incident_id, _ = await plan_and_approve(api)
        # Settled by the senders themselves, not left `sending` for the reconciler.
        await wait_until(lambda: all_final(api, incident_id), "every email settled")
        rows = {r.address: r for r in await deliveries(api, incident_id)}
        assert rows["wei@example.org"].state is S.failed and rows["wei@example.org"].attempts == 1
        assert rows["wei@example.org"].error_code == "internal_error"
        assert {rows[a].state for a in ("ann@example.org", "luc@example.org")} == {S.delivered}
        assert Counter(r.to for r in smtp.recorder.received) == {"ann@example.org": 1, "luc@example.org": 1}


async def test_a_text_that_no_longer_renders_fails_its_deliveries_only(
    apps: Apps, households: Path, tmp_path: Path
) -> None:
    templates = tmp_path / "notices"

    def copy() -> None:
        shutil.copytree(BUNDLED_DIR / "templates" / "notices", templates)
        # Changed after the notice was approved: fails for this notice's place, in English.
        path = templates / "en" / "main_break.email.j2"
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("\n\n", "\n\n{% if area == 'Maple St' %}{{ area.no.such }}{% endif %}", 1),
                        encoding="utf-8")  # fmt: skip

    await asyncio.to_thread(copy)
    async with smtp_server() as smtp:
        planner = await apps.make(system_clock=True, INCIDENT_AREA__HOUSEHOLDS=str(households),
                                  **smtp.env())  # approves; sends nothing  # fmt: skip
        incident_id, _ = await plan_and_approve(planner)
        sender = await email_app(apps, smtp, households, INCIDENT_NOTIFY__TEMPLATES=str(templates))
        await wait_until(lambda: all_final(sender, incident_id), "every email settled")
        rows = {r.address: r for r in await deliveries(sender, incident_id)}
        # English (and French, which falls back to it) no longer renders: failed, never sent.
        assert {a: (r.state, r.error_code) for a, r in rows.items() if r.state is S.failed} == {
            "ann@example.org": (S.failed, "not_rendered"),
            "luc@example.org": (S.failed, "not_rendered"),
        }
        assert rows["wei@example.org"].state is S.delivered
        assert [r.to for r in smtp.recorder.received] == ["wei@example.org"]


async def test_email_is_a_channel_only_when_configured_and_templated(apps: Apps, tmp_path: Path) -> None:
    templates = tmp_path / "notices"

    def copy() -> None:
        shutil.copytree(BUNDLED_DIR / "templates" / "notices", templates)
        for stale in templates.glob("*/planned_outage.email.j2"):
            stale.unlink()  # a key without an email template

    await asyncio.to_thread(copy)
    plain = await apps.make()
    inc = await plain.declare(area=BOX)
    body = {"template": "main_break", "channels": ["sms", "email"], "facts": {"area": "Maple St"}}
    status, refused = await plain.call("POST", f"/api/incidents/{inc['id']}/notices/preview", json=body)
    assert status == 422 and "email needs an SMTP server" in refused["error"]["message"], refused

    async with smtp_server() as smtp:
        api = await apps.make(**smtp.env(), INCIDENT_NOTIFY__TEMPLATES=str(templates))
        inc = await api.declare(area=BOX)
        # No email template for this key: the notice goes by SMS only, and says why.
        body = {"template": "planned_outage", "channels": ["sms", "email"], "facts": {"area": "Maple St"}}
        status, planned = await api.call("POST", f"/api/incidents/{inc['id']}/notices", json=body)
        assert status == 201, planned
        notice = planned["notice"]
        assert notice["channels"] == ["sms"]
        assert "no planned_outage.email.j2 template" in notice["skipped_channels"]["email"]
        status, preview = await api.call("POST", f"/api/incidents/{inc['id']}/notices/preview", json=body)
        assert status == 200 and preview["skipped_channels"] == notice["skipped_channels"]
        only_email = {**body, "channels": ["email"]}
        status, refused = await api.call("POST", f"/api/incidents/{inc['id']}/notices", json=only_email)
        assert status == 422 and "no planned_outage.email.j2 template" in refused["error"]["message"]


async def test_the_sender_maps_what_the_server_says_onto_carrier_errors() -> None:
    from datetime import UTC, datetime

    from incident.adapters.smtp import EmailSender
    from incident.core.errors import CarrierError
    from incident.settings import load_settings

    at = datetime(2026, 11, 22, tzinfo=UTC)

    async def send(sender: EmailSender) -> str:
        return await sender.send(
            "ann@example.org", "Subject", "Body.", language="en", delivery_id="I-1-N1:1", at=at
        )

    async with smtp_server() as smtp:
        sender = EmailSender((await asyncio.to_thread(load_settings, None, smtp.env())).email)
        assert await send(sender) == "<I-1-N1.1@sampletown.example>"
        cases = [
            ("451 4.7.1 Greylisted", "RCPT", (True, False, 451)),
            ("550 5.7.1 Relaying denied", "RCPT", (False, False, 550)),
            ("452 4.3.1 Insufficient storage", "DATA", (True, False, 452)),
            ("552 5.3.4 Message too big", "DATA", (False, False, 552)),
        ]
        for reply, at_step, expected in cases:
            smtp.recorder.fail_next(reply, at=at_step)  # type: ignore[arg-type]
            with pytest.raises(CarrierError) as err:
                await send(sender)
            assert (err.value.retryable, err.value.outcome_unknown, err.value.carrier_code) == expected
            assert "ann@example.org" not in str(err.value)
        # A subject with line breaks of every kind (from text stored before they were refused):
        # one line, sent; a message that cannot be built at all is a final error of its own.
        taken = await sender.send(
            "ann@example.org", "Water off:\r Elm\x0bSt\x0c 1-99\x85\u2028now\x01", "Body.", language="en",
            delivery_id="I-1-N1:2", at=at,
        )  # fmt: skip
        assert taken == "<I-1-N1.2@sampletown.example>"
        assert smtp.recorder.received[-1].subject == "Water off: Elm St 1-99 now"
        with pytest.raises(CarrierError) as err:
            await sender.send("ann@example.org\r\nBcc: x@y.example", "S", "B", language="en", delivery_id="I-1-N1:3",
                              at=at)  # fmt: skip
        assert not err.value.retryable and "ann@example.org" not in str(err.value)
        # The server refusing the sender is its trouble or ours (a login it wants, a sender
        # it does not relay for), not the recipient's: tried again, and seen.
        smtp.recorder.fail_next("530 5.7.0 Authentication required", at="MAIL")
        with pytest.raises(CarrierError) as err:
            await send(sender)
        assert (err.value.retryable, err.value.carrier_code) == (True, 530)
        assert "ann@example.org" not in str(err.value)
        smtp.recorder.drop_in_data = 1
        with pytest.raises(CarrierError) as err:
            await send(sender)
        assert err.value.outcome_unknown  # it may have arrived: never sent again
        port = smtp.port
    # Nobody listens any more: nothing went out, so it is tried again.
    gone = EmailSender(
        (await asyncio.to_thread(load_settings, None, smtp.env(INCIDENT_EMAIL__PORT=str(port)))).email
    )
    with pytest.raises(CarrierError) as err:
        await send(gone)
    assert err.value.retryable and not err.value.outcome_unknown
