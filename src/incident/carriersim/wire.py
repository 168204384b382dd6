"""Twilio's wire formats, as the drill carrier speaks them: pure functions, no I/O.

Resource JSON (Message, Call, list pages), error JSON, RFC 2822 dates, the list filters'
date forms, the form fields of status callbacks, Gather actions and inbound SMS, and the
Gather action found in TwiML.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from typing import Any, Final
from urllib.parse import urljoin

from incident.carriersim.records import CallRecord, MessageRecord

__all__ = [
    "API_VERSION",
    "TwilioError",
    "call_json",
    "call_status_params",
    "date_filter",
    "error_body",
    "gather_action",
    "gather_params",
    "inbound_sms_params",
    "is_e164",
    "is_http_url",
    "is_sender",
    "mask",
    "message_json",
    "message_status_params",
    "rfc2822",
    "twiml_params",
]

API_VERSION: Final = "2010-04-01"
_E164 = re.compile(r"\+[1-9]\d{1,14}")
_ALPHANUMERIC_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class TwilioError(Exception):
    """An error answered in Twilio's JSON shape: ``{code, message, more_info, status}``."""

    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_body(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def mask(number: str) -> str:
    """All but the last two digits hidden, for logs and error messages."""
    return "*" * max(len(number) - 2, 0) + number[-2:]


def is_e164(number: str) -> bool:
    return _E164.fullmatch(number) is not None


def is_sender(value: str) -> bool:
    """An E.164 number or an alphanumeric sender ID."""
    return is_e164(value) or _ALPHANUMERIC_SENDER.fullmatch(value) is not None


def is_http_url(value: str) -> bool:
    return value.startswith(("http://", "https://")) and len(value) > len("https://")


def rfc2822(at: datetime | None) -> str | None:
    """Twilio's timestamps: ``Thu, 30 Jul 2015 20:12:31 +0000``."""
    return None if at is None else format_datetime(at.astimezone(UTC).replace(microsecond=0))


def date_filter(value: str) -> tuple[datetime, datetime]:
    """A list filter's date as the half-open range it covers: a day (``YYYY-MM-DD``) or
    one second (``YYYY-MM-DDTHH:MM:SSZ``, as the twilio library sends datetimes).
    Raises ValueError for anything else."""
    text = value.strip()
    if _DAY.fullmatch(text):
        day = date.fromisoformat(text)
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return start, start + timedelta(days=1)
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at, at + timedelta(seconds=1)


def _account_uri(account_sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}"


def message_json(record: MessageRecord, account_sid: str, mono: float) -> dict[str, Any]:
    status = record.status_at(mono)
    final = status in ("delivered", "undelivered", "failed")
    uri = f"{_account_uri(account_sid)}/Messages/{record.sid}"
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": record.body,
        "date_created": rfc2822(record.created),
        "date_sent": rfc2822(record.date_sent(mono)),
        "date_updated": rfc2822(record.updated_at(mono)),
        "direction": record.direction,
        "error_code": record.error_code if final else None,
        "error_message": None,
        "from": record.from_,
        "messaging_service_sid": record.messaging_service_sid,
        "num_media": "0",
        "num_segments": str(record.num_segments),
        "price": None,
        "price_unit": "USD",
        "sid": record.sid,
        "status": status,
        "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
        "to": record.to,
        "uri": f"{uri}.json",
    }


def call_json(record: CallRecord, account_sid: str, mono: float) -> dict[str, Any]:
    status = record.status_at(mono)
    end = record.end_time(mono)
    uri = f"{_account_uri(account_sid)}/Calls/{record.sid}"
    return {
        "account_sid": account_sid,
        "annotation": None,
        "answered_by": record.answered_by if end is not None else None,
        "api_version": API_VERSION,
        "caller_name": None,
        "date_created": rfc2822(record.created),
        "date_updated": rfc2822(record.updated_at(mono)),
        "direction": "outbound-api",
        "duration": str(record.duration_s) if end is not None else None,
        "end_time": rfc2822(end),
        "forwarded_from": None,
        "from": record.from_,
        "from_formatted": record.from_,
        "group_sid": None,
        "parent_call_sid": None,
        "phone_number_sid": None,
        "price": None,
        "price_unit": "USD",
        "queue_time": "0",
        "sid": record.sid,
        "start_time": rfc2822(record.start_time(mono)),
        "status": status,
        "subresource_uris": {
            "notifications": f"{uri}/Notifications.json",
            "recordings": f"{uri}/Recordings.json",
            "events": f"{uri}/Events.json",
        },
        "to": record.to,
        "to_formatted": record.to,
        "trunk_sid": None,
        "uri": f"{uri}.json",
    }


def message_status_params(record: MessageRecord, account_sid: str, status: str) -> dict[str, str]:
    """The form Twilio posts to a message's StatusCallback."""
    params = {
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
        "From": record.from_,
        "MessageSid": record.sid,
        "MessageStatus": status,
        "SmsSid": record.sid,
        "SmsStatus": status,
        "To": record.to,
    }
    if record.messaging_service_sid:
        params["MessagingServiceSid"] = record.messaging_service_sid
    if status in ("undelivered", "failed") and record.error_code is not None:
        params["ErrorCode"] = str(record.error_code)
    if status == "delivered":
        params["RawDlrDoneDate"] = record.final_at().strftime("%y%m%d%H%M")
    return params


def _call_params(record: CallRecord, account_sid: str, status: str) -> dict[str, str]:
    return {
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
        "CallSid": record.sid,
        "CallStatus": status,
        "Called": record.to,
        "Caller": record.from_,
        "Direction": "outbound-api",
        "From": record.from_,
        "To": record.to,
    }


def call_status_params(
    record: CallRecord, account_sid: str, status: str, sequence: int, now: datetime
) -> dict[str, str]:
    """The form Twilio posts to a call's StatusCallback for one progress event."""
    params = _call_params(record, account_sid, status)
    params["CallbackSource"] = "call-progress-events"
    params["SequenceNumber"] = str(sequence)
    params["Timestamp"] = rfc2822(now) or ""
    answered_by = record.answered_by
    if answered_by and status in ("in-progress", "completed"):
        params["AnsweredBy"] = answered_by
    if status in ("completed", "busy", "no-answer", "failed"):
        params["CallDuration"] = str(record.duration_s)
    return params


def gather_params(record: CallRecord, account_sid: str, digits: str) -> dict[str, str]:
    """The form Twilio posts to a Gather action when the caller pressed ``digits``."""
    params = _call_params(record, account_sid, "in-progress")
    params["Digits"] = digits
    params["FinishedOnKey"] = ""
    params["msg"] = "Gather End"
    answered_by = record.answered_by
    if answered_by:
        params["AnsweredBy"] = answered_by
    return params


def twiml_params(record: CallRecord, account_sid: str) -> dict[str, str]:
    """The form Twilio posts to a call's Url when the call is answered."""
    params = _call_params(record, account_sid, "in-progress")
    answered_by = record.answered_by
    if answered_by:
        params["AnsweredBy"] = answered_by
    return params


def inbound_sms_params(
    account_sid: str, sid: str, from_: str, to: str, body: str, segments: int
) -> dict[str, str]:
    """The form Twilio posts to a number's messaging webhook for an incoming SMS."""
    return {
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
        "Body": body,
        "From": from_,
        "MessageSid": sid,
        "NumMedia": "0",
        "NumSegments": str(segments),
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "To": to,
    }


def gather_action(twiml: str, document_url: str | None = None) -> tuple[str, str] | None:
    """(action URL, method) of the first ``<Gather>`` in a TwiML document, or None.

    A relative action is resolved against ``document_url`` (the call's Url); a Gather without
    an action posts back to the document itself, as Twilio does. Inline TwiML has no URL of
    its own, so there the action must be absolute.
    """
    try:
        # TwiML from our own service; expat refuses entity expansion attacks since 2.4.1.
        root = ET.fromstring(twiml)  # noqa: S314
    except ET.ParseError:
        return None
    gather = root if root.tag == "Gather" else root.find(".//Gather")
    if gather is None:
        return None
    action = gather.get("action", "").strip()
    method = gather.get("method", "POST").strip().upper() or "POST"
    url = urljoin(document_url, action) if document_url else action
    return (url, method) if is_http_url(url) else None
