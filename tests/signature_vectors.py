"""Published X-Twilio-Signature vectors (docs/twilio-video.md §2, twilio-python's tests)."""

TOKEN = "12345"

# Twilio docs vector
DOCS_URL = "https://example.com/myapp.php?foo=1&bar=2"
DOCS_PARAMS = {
    "CallSid": ["CA1234567890ABCDE"],
    "Caller": ["+14158675310"],
    "Digits": ["1234"],
    "From": ["+14158675310"],
    "To": ["+18005551212"],
}
DOCS_SIG = "L/OH5YylLD5NRKLltdqwSvS0BnU="

# twilio-python unit-test vectors
TP_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TP_PARAMS = {
    "CallSid": ["CA1234567890ABCDE"],
    "Digits": ["1234"],
    "From": ["+14158675309"],
    "To": ["+18005551212"],
    "Caller": ["+14158675309"],
}
TP_SIG = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
TP_SIG_443 = "kvajT1Ptam85bY51eRf/AJRuM3w="
TP_SIG_HTTP_80 = "0ZXoZLH/DfblKGATFgpif+LLRf4="
TP_SIG_HTTP_1234 = "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
TP_DUP_SIG = "IK+Dwps556ElfBT0I3Rgjkr1wJU="
JSON_BODY = b'{"property": "value", "boolean": true}'
JSON_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
JSON_SIG = "a9nBmqA0ju/hNViExpshrM61xv4="
