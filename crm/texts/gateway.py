"""Every call to Twilio goes through here: the client, where it points, retries, errors.

twilio-python's own `Client` makes the calls; `RoutedHttpClient` (its `TwilioHttpClient` with
the base swapped) points it at the sandbox (`{SANDBOX_URL}/twilio`) when no auth token is set,
or at TWILIO_API_URL when tests set it. Twilio has no idempotency key, so a send is never
retried here after Twilio may have received it: the caller (crm/texts/send.py) records the
text first and looks for it again (`find_sent`) before sending a second time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from crm.config.settings import Settings, sandbox_url
from crm.texts.errors import retryable, sentence

# The sandbox's Twilio account (sandbox/config.py has the same values; a test holds them equal).
SANDBOX_ACCOUNT_SID = "AC5a0d1b0c5a0d1b0c5a0d1b0c5a0d1b0c"
SANDBOX_AUTH_TOKEN = "5a0d1b0c5a0d1b0c5a0d1b0c5a0d1b0c"
SANDBOX_MESSAGING_SERVICE_SID = "MG5a0d1b0c5a0d1b0c5a0d1b0c5a0d1b0c"
_HOSTS = {"https://api.twilio.com": "", "https://messaging.twilio.com": "/messaging"}


class TextError(RuntimeError):
    """Twilio refused or could not be reached; `code` is Twilio's error code when it gave one."""

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code, self.status = code, status

    @property
    def retryable(self) -> bool:
        return retryable(self.status, self.code)


@dataclass(frozen=True)
class TwilioTarget:
    account_sid: str
    auth_token: str
    messaging_service_sid: str
    api_base: str | None  # None: Twilio itself
    sandboxed: bool


def twilio_target(settings: Settings) -> TwilioTarget:
    if settings.twilio_sandboxed:
        return TwilioTarget(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, SANDBOX_MESSAGING_SERVICE_SID,
                            os.environ.get("TWILIO_API_URL") or f"{sandbox_url()}/twilio", True)
    return TwilioTarget(str(settings["twilio.account_sid"]), str(settings["twilio.auth_token"]),
                        str(settings["twilio.messaging_service_sid"]), os.environ.get("TWILIO_API_URL") or None,
                        False)


class RoutedHttpClient(TwilioHttpClient):
    """twilio-python's HTTP client with https://api.twilio.com (and messaging.twilio.com)
    replaced by `base` (and `base`/messaging)."""

    def __init__(self, base: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.base = base.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        for host, prefix in _HOSTS.items():
            if url.startswith(host):
                url = self.base + prefix + url[len(host):]
                break
        return super().request(method, url, *args, **kwargs)


def _timeout() -> float:
    return float(os.environ.get("TWILIO_TIMEOUT_S", "10"))


class TwilioGateway:
    def __init__(self, target: TwilioTarget) -> None:
        self.target = target
        http = RoutedHttpClient(target.api_base, _timeout()) if target.api_base else TwilioHttpClient(
            timeout=_timeout())
        self.client = Client(target.account_sid, target.auth_token, http_client=http)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TwilioRestException as exc:
            words = sentence(exc.code, str(exc.msg)) if exc.code else str(exc.msg)
            raise TextError(f"Twilio refused to {what}: {words}", code=exc.code, status=exc.status) from None
        except Exception as exc:  # noqa: BLE001 - requests' connection errors and timeouts
            raise TextError(f"Twilio could not be reached to {what} ({type(exc).__name__})") from None

    def send(self, to: str, body: str, *, status_callback: str | None, send_at: datetime | None = None) -> Any:
        """One text from the Messaging Service; scheduled (ScheduleType=fixed) when `send_at`."""
        params: dict[str, Any] = {"to": to, "body": body, "messaging_service_sid": self.target.messaging_service_sid}
        if status_callback:
            params["status_callback"] = status_callback
        if send_at is not None:
            params.update(schedule_type="fixed", send_at=send_at)
        return self._call("send the text", self.client.messages.create, **params)

    def fetch(self, sid: str) -> Any:
        return self._call("look up the text", self.client.messages(sid).fetch)

    def cancel(self, sid: str) -> Any:
        """Stop a scheduled text (Status=canceled); Twilio refuses once it has gone out."""
        return self._call("cancel the scheduled text", self.client.messages(sid).update, status="canceled")

    def find_sent(self, to: str, body: str, since: datetime) -> Any | None:
        """A text with this body Twilio already has for `to` since `since`: how a send whose
        answer was lost is found again (Twilio has no idempotency key)."""
        rows = self._call("list texts", self.client.messages.list, to=to, limit=50)
        for msg in rows:
            created = msg.date_created
            if msg.body == body and (created is None or created >= since.replace(microsecond=0)):
                return msg
        return None

    def account_status(self) -> str:
        return str(self._call("read the account", self.client.api.v2010.accounts(self.target.account_sid).fetch).status)

    def messaging_service_name(self) -> str:
        svc = self._call("read the Messaging Service",
                         self.client.messaging.v1.services(self.target.messaging_service_sid).fetch)
        return str(svc.friendly_name)
