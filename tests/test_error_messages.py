"""Errors say what is wrong without leaking: a missing X-Twilio-Signature is "missing", a wrong one
"does not match"; Basic auth says missing / malformed / invalid credentials (never which of the
account SID and the token was wrong), always with Twilio's code 20003."""

from __future__ import annotations

import base64

import pytest

from service.http.auth import check_basic
from service.rooms.errors import INVALID_CREDENTIALS, MALFORMED_CREDENTIALS, NO_CREDENTIALS, TwilioError
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, basic_auth
from tests.test_callbacks_http import callback_params, ingress_only, send, twilio_request


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "header, message",
    [
        (None, NO_CREDENTIALS),
        ("", NO_CREDENTIALS),
        ("Bearer abc", MALFORMED_CREDENTIALS),
        ("Basic not-base64!", MALFORMED_CREDENTIALS),
        ("Basic " + base64.b64encode(b"no-colon").decode(), MALFORMED_CREDENTIALS),
        (basic(ACCOUNT_SID, "wrong-token"), INVALID_CREDENTIALS),
        (basic("AC" + "0" * 32, AUTH_TOKEN), INVALID_CREDENTIALS),  # same words: the SID's existence does not leak
        (basic("AC" + "0" * 32, "wrong-token"), INVALID_CREDENTIALS),
    ],
)
def test_basic_auth_messages(header, message):
    with pytest.raises(TwilioError) as info:
        check_basic(header, ACCOUNT_SID, (AUTH_TOKEN,))
    assert (info.value.code, info.value.status, info.value.message) == (20003, 401, message)
    assert "username" not in info.value.message


def test_right_credentials_pass():
    assert check_basic(basic(ACCOUNT_SID, AUTH_TOKEN), ACCOUNT_SID, ("old", AUTH_TOKEN)) is None


async def test_messages_over_http(settings):
    async with ingress_only(settings) as (server, http):
        rooms = f"{server.url}/v1/Rooms"
        async with http.get(rooms) as resp:
            assert resp.status == 401 and (await resp.json())["message"] == NO_CREDENTIALS
        async with http.get(rooms, headers=basic_auth(token="wrong")) as resp:
            body = await resp.json()
            assert (resp.status, body["code"], body["message"]) == (401, 20003, INVALID_CREDENTIALS)

        url = f"{server.url}{settings.callback_path}"
        target, body, headers = twilio_request("POST", url, callback_params())
        unsigned = {k: v for k, v in headers.items() if k != "X-Twilio-Signature"}
        status, _, raw = await send(http, "POST", target, body, unsigned)
        assert status == 403 and b"X-Twilio-Signature header is missing" in raw
        status, _, raw = await send(http, "POST", target, body, headers | {"X-Twilio-Signature": "bm90LXZhbGlk"})
        assert status == 403 and b"X-Twilio-Signature does not match this request" in raw
