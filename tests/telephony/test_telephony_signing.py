"""``X-Twilio-Signature`` in both directions."""

from __future__ import annotations

from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict
from werkzeug.test import Client

from telephony.signing import SIGNATURE_HEADER, is_valid, sign
from tests.twiml_testapp import PUBLIC, TOKEN, make_twiml_app, twiml

URL = "https://example.ru/voice/incoming?lang=ru"
PARAMS = {"CallSid": "CA" + "1" * 32, "Digits": "1234", "From": "+79161234501"}


def test_sign_matches_twilio_and_validates() -> None:
    signature = sign(TOKEN, URL, PARAMS)
    assert RequestValidator(TOKEN).validate(URL, PARAMS, signature)
    assert signature == RequestValidator(TOKEN).compute_signature(URL, PARAMS)
    assert is_valid(TOKEN, URL, PARAMS, signature)


def test_tampering_is_detected() -> None:
    signature = sign(TOKEN, URL, PARAMS)
    assert not is_valid("other-token", URL, PARAMS, signature)
    assert not is_valid(TOKEN, URL.replace("https", "http"), PARAMS, signature)
    assert not is_valid(TOKEN, URL, {**PARAMS, "Digits": "9999"}, signature)
    assert not is_valid(TOKEN, URL, PARAMS, None)
    assert not is_valid(TOKEN, URL, PARAMS, "")
    assert not is_valid("", URL, PARAMS, signature)


def test_repeated_parameters_from_a_multidict() -> None:
    form = MultiDict([("StatusCallbackEvent", "ringing"), ("StatusCallbackEvent", "answered")])
    signature = sign(TOKEN, URL, {"StatusCallbackEvent": ["ringing", "answered"]})
    assert is_valid(TOKEN, URL, form, signature)
    assert not is_valid(TOKEN, URL, MultiDict([("StatusCallbackEvent", "ringing")]), signature)


def test_validating_app_rejects_forged_and_unsigned_requests() -> None:
    state = make_twiml_app()
    state.on("/voice/incoming", twiml("<Hangup/>"))
    client = Client(state.app)
    url = f"{PUBLIC}/voice/incoming"
    unsigned = client.post(url, data=PARAMS)
    forged = client.post(url, data=PARAMS, headers={SIGNATURE_HEADER: sign("guess", url, PARAMS)})
    wrong_url = client.post(
        url, data=PARAMS, headers={SIGNATURE_HEADER: sign(TOKEN, f"{PUBLIC}/other", PARAMS)}
    )
    good = client.post(url, data=PARAMS, headers={SIGNATURE_HEADER: sign(TOKEN, url, PARAMS)})
    assert [unsigned.status_code, forged.status_code, wrong_url.status_code] == [403, 403, 403]
    assert good.status_code == 200
    assert state.rejected == ["/voice/incoming"] * 3
