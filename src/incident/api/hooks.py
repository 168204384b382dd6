"""Carrier webhooks under ``/hooks/twilio/...``: public routes, authenticated by the
``X-Twilio-Signature`` each handler checks (see :mod:`incident.api.webhooks`)."""

from __future__ import annotations

from incident.api.endpoint import Endpoint
from incident.api.webhooks import HookOptions, gather, inbound_sms, make_status_callback

#: A form that cannot be read; a wrong signature; too large.
_SIGNED = (400, 403, 413)


def hook_endpoints(options: HookOptions | None = None) -> tuple[Endpoint, ...]:
    """The webhook routes. With ``options`` the status handler uses them; without, it reads
    ``app[HOOK_OPTIONS]`` (defaults when absent)."""
    return (
        Endpoint(
            "POST",
            "/hooks/twilio/status",
            make_status_callback(options),
            "Twilio status callback of an SMS or a call (form fields, signed)",
            None,
            tag="hooks",
            errors=_SIGNED,
        ),
        Endpoint(
            "POST",
            "/hooks/twilio/gather",
            gather,
            "Twilio <Gather> action of a notice call: Digits=1 confirms (answers TwiML)",
            None,
            tag="hooks",
            content_type="application/xml",
            errors=_SIGNED,
        ),
        Endpoint(
            "POST",
            "/hooks/twilio/inbound",
            inbound_sms,
            "Twilio inbound SMS: STOP/START/HELP (退订/订阅/帮助) or a reply to the timeline (answers TwiML)",
            None,
            tag="hooks",
            content_type="application/xml",
            errors=_SIGNED,
        ),
    )


ENDPOINTS: tuple[Endpoint, ...] = hook_endpoints()
