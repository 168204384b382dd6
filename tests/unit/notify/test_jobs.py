"""Notify jobs as read by a sender: current jobs name their channel; jobs published by an
earlier version (no channel, or one delivery each) are still sent, never dropped."""

from __future__ import annotations

import logging

import msgspec
import pytest

from incident.households.model import Channel
from incident.notices.fanout import NotifyJob, _read_jobs

encode = msgspec.json.encode


def test_jobs_are_grouped_by_their_channel_in_order() -> None:
    by_channel, unknown = _read_jobs([
        encode(NotifyJob(delivery_ids=["a:1", "a:2"], channel="sms")),
        encode(NotifyJob(delivery_ids=["a:3"], channel="voice")),
        encode(NotifyJob(delivery_ids=["a:4", "a:5"], channel="sms")),
    ])  # fmt: skip
    assert by_channel == {Channel.sms: ["a:1", "a:2", "a:4", "a:5"], Channel.voice: ["a:3"]}
    assert unknown == []


def test_jobs_of_earlier_versions_are_read_for_their_deliveries() -> None:
    by_channel, unknown = _read_jobs([
        b'{"delivery_ids": ["b:1", "b:2"]}',  # no channel yet
        b'{"delivery_id": "b:3"}',  # one delivery per job
        encode(NotifyJob(delivery_ids=["b:4"], channel="push")),
    ])  # fmt: skip
    assert unknown == ["b:1", "b:2", "b:3"]
    assert by_channel == {Channel.push: ["b:4"]}


def test_what_is_not_a_job_is_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="incident.notices.fanout"):
        by_channel, unknown = _read_jobs([
            b"not json", None, b'{"delivery_ids": "c:0"}',
            # A channel this version does not know: its deliveries are read, not dropped.
            b'{"delivery_ids": ["c:1"], "channel": "fax"}',
            encode(NotifyJob(delivery_ids=["c:2"], channel="sms")),
        ])  # fmt: skip
    assert by_channel == {Channel.sms: ["c:2"]} and unknown == ["c:1"]
    assert [r.getMessage() for r in caplog.records].count("notify job that is not a job skipped") == 2
