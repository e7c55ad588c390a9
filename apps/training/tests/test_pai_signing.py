"""ACS3-HMAC-SHA256 request signing and its verifier."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

import pytest

from apps.training.pai import signing

DATE = dt.datetime(2023, 10, 26, 10, 22, 32, tzinfo=dt.UTC)


def test_alibaba_documented_example():
    """The worked example of Alibaba Cloud's "Request syntax and signature method V3" page (section "Signature
    examples" → "Fixed parameter values"): RunInstances on ecs.cn-shanghai.aliyuncs.com, AccessKeyId
    YourAccessKeyId, AccessKeySecret YourAccessKeySecret, nonce 3156853299f313e23d1673dc12e1703d, date
    2023-10-26T10:22:32Z, query ImageId=…&RegionId=cn-shanghai, empty body. The page gives the canonical request,
    the hashed canonical request 7ea06492… and the signature 06563a9e…; all three are checked here."""
    query = {"ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd", "RegionId": "cn-shanghai"}
    headers = {
        "host": "ecs.cn-shanghai.aliyuncs.com",
        "x-acs-action": "RunInstances",
        "x-acs-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "x-acs-date": "2023-10-26T10:22:32Z",
        "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
        "x-acs-version": "2014-05-26",
    }
    canonical, signed = signing.canonical_request(
        method="POST",
        path="/",
        query=signing.canonical_query(query),
        headers=headers,
        payload_hash=signing.hashed_payload(b""),
    )
    assert canonical == (
        "POST\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\n"
        "host:ecs.cn-shanghai.aliyuncs.com\nx-acs-action:RunInstances\n"
        "x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        "x-acs-date:2023-10-26T10:22:32Z\nx-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\n"
        "x-acs-version:2014-05-26\n\n"
        "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert signing.string_to_sign(canonical) == (
        "ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
    )
    expected = "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
    assert signing.signature("YourAccessKeySecret", signing.string_to_sign(canonical)) == expected

    sent = signing.sign_request(
        method="POST",
        host="ecs.cn-shanghai.aliyuncs.com",
        path="/",
        query=query,
        action="RunInstances",
        version="2014-05-26",
        access_key_id="YourAccessKeyId",
        access_key_secret="YourAccessKeySecret",
        date=DATE,
        nonce="3156853299f313e23d1673dc12e1703d",
    )
    assert sent["Authorization"] == (
        f"ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders={signed},Signature={expected}"
    )


def _by_hand(secret: str, canonical: str) -> str:
    """The documented algorithm, step by step, with nothing from the module under test."""
    hashed = hashlib.sha256(canonical.encode()).hexdigest()
    return hmac.new(secret.encode(), f"ACS3-HMAC-SHA256\n{hashed}".encode(), hashlib.sha256).hexdigest()


def test_roa_post_with_a_json_body_signs_content_type_and_the_body_hash():
    body = json.dumps({"TrainingJobName": "mlab-run-7", "WorkspaceId": "123"}, separators=(",", ":")).encode()
    body_hash = hashlib.sha256(body).hexdigest()
    canonical = (
        "POST\n/api/v1/trainingjobs\n\n"
        "content-type:application/json\n"
        "host:pai.cn-hangzhou.aliyuncs.com\n"
        "x-acs-action:CreateTrainingJob\n"
        f"x-acs-content-sha256:{body_hash}\n"
        "x-acs-date:2024-03-01T08:00:00Z\n"
        "x-acs-signature-nonce:0123456789abcdef\n"
        "x-acs-version:2022-01-12\n\n"
        "content-type;host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n"
        f"{body_hash}"
    )
    headers = signing.sign_request(
        method="POST",
        host="pai.cn-hangzhou.aliyuncs.com",
        path="/api/v1/trainingjobs",
        body=body,
        action="CreateTrainingJob",
        version="2022-01-12",
        access_key_id="AKID",
        access_key_secret="s3cr3t",
        content_type="application/json",
        date=dt.datetime(2024, 3, 1, 8, 0, 0, tzinfo=dt.UTC),
        nonce="0123456789abcdef",
    )
    assert headers["x-acs-content-sha256"] == body_hash
    assert headers["Authorization"].endswith(f"Signature={_by_hand('s3cr3t', canonical)}")
    assert "SignedHeaders=content-type;host;x-acs-action;" in headers["Authorization"]


def test_query_values_are_rfc3986_encoded_and_sorted():
    labels = '{"mlab-run-id":"42 *~/"}'
    encoded = "%7B%22mlab-run-id%22%3A%2242%20%2A~%2F%22%7D"
    canonical = (
        "GET\n/api/v1/trainingjobs\n"
        f"Labels={encoded}&PageNumber=1&WorkspaceId=w%201\n"
        "host:127.0.0.1:8470\n"
        f"x-acs-action:ListTrainingJobs\nx-acs-content-sha256:{hashlib.sha256(b'').hexdigest()}\n"
        "x-acs-date:2024-03-01T08:00:00Z\nx-acs-signature-nonce:n1\nx-acs-version:2022-01-12\n\n"
        "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n"
        f"{hashlib.sha256(b'').hexdigest()}"
    )
    headers = signing.sign_request(
        method="GET",
        host="127.0.0.1:8470",
        path="/api/v1/trainingjobs",
        query={"WorkspaceId": "w 1", "PageNumber": "1", "Labels": labels},
        action="ListTrainingJobs",
        version="2022-01-12",
        access_key_id="AKID",
        access_key_secret="another secret",
        date=dt.datetime(2024, 3, 1, 8, 0, 0, tzinfo=dt.UTC),
        nonce="n1",
    )
    assert headers["Authorization"].endswith(f"Signature={_by_hand('another secret', canonical)}")


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [("a b", "a%20b"), ("a*b", "a%2Ab"), ("a~b", "a~b"), ("a+b", "a%2Bb"), ("é", "%C3%A9"), ("-_.", "-_.")],
)
def test_percent_encoding_follows_alibaba(raw, encoded):
    assert signing.percent_encode(raw) == encoded


def test_canonical_uri_is_the_same_for_raw_and_encoded_paths():
    assert signing.canonical_uri("/api/v1/trainingjobs/a b") == "/api/v1/trainingjobs/a%20b"
    assert signing.canonical_uri("/api/v1/trainingjobs/a%20b") == "/api/v1/trainingjobs/a%20b"


# -- the verifier -------------------------------------------------------------------------------------------
SECRET = "verifier-test-secret"
NOW = dt.datetime(2024, 3, 1, 8, 0, 0, tzinfo=dt.UTC)


def _signed(body=b'{"a":1}', query=None, secret=SECRET, key="AKID", date=NOW, nonce=None):
    headers = signing.sign_request(
        method="POST",
        host="127.0.0.1:9",
        path="/api/v1/trainingjobs",
        query=query or {},
        body=body,
        action="CreateTrainingJob",
        version="2022-01-12",
        access_key_id=key,
        access_key_secret=secret,
        content_type="application/json",
        date=date,
        nonce=nonce,
    )
    return headers


def _verify(headers, body=b'{"a":1}', raw_query="", path="/api/v1/trainingjobs", **options):
    return signing.verify_request(
        method="POST",
        path=path,
        raw_query=raw_query,
        headers=headers,
        body=body,
        secret_for={"AKID": SECRET}.get,
        now=NOW,
        **options,
    )


def test_verifier_accepts_a_good_request():
    query = {"Labels": '{"k":"v w"}', "X": "1"}
    headers = _signed(query=query)
    assert _verify(headers, raw_query=signing.canonical_query(query)) == "AKID"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda h: h.pop("Authorization"), "IncompleteSignature"),
        (lambda h: h.__setitem__("Authorization", "Bearer x"), "IncompleteSignature"),
        (lambda h: h.__setitem__("x-acs-action", "StopTrainingJob"), "SignatureDoesNotMatch"),
        (lambda h: h.__setitem__("host", "evil.example.com"), "SignatureDoesNotMatch"),
        (lambda h: h.__setitem__("content-type", "text/plain"), "SignatureDoesNotMatch"),
        (lambda h: h.__setitem__("x-acs-date", "yesterday"), "InvalidTimeStamp.Format"),
    ],
)
def test_verifier_refuses_tampered_headers(change, code):
    headers = _signed()
    change(headers)
    with pytest.raises(signing.SignatureRejected) as refused:
        _verify(headers)
    assert refused.value.code == code
    assert refused.value.status in (400, 401, 403)


def test_verifier_refuses_a_changed_body_query_or_path():
    headers = _signed()
    for kwargs in ({"body": b'{"a":2}'}, {"raw_query": "Labels=x"}, {"path": "/api/v1/trainingjobs/x/stop"}):
        with pytest.raises(signing.SignatureRejected) as refused:
            _verify(dict(headers), **kwargs)
        assert refused.value.code == "SignatureDoesNotMatch"


def test_verifier_refuses_wrong_secret_unknown_key_old_date_and_replay():
    with pytest.raises(signing.SignatureRejected, match="SignatureDoesNotMatch"):
        _verify(_signed(secret="not-the-secret"))
    with pytest.raises(signing.SignatureRejected, match="InvalidAccessKeyId.NotFound"):
        _verify(_signed(key="OTHER"))
    with pytest.raises(signing.SignatureRejected, match="InvalidTimeStamp.Expired"):
        _verify(_signed(date=NOW - dt.timedelta(minutes=16)))
    used: set[str] = set()

    def seen(nonce):
        before = nonce in used
        used.add(nonce)
        return before

    headers = _signed(nonce="once")
    _verify(dict(headers), nonce_seen=seen)
    with pytest.raises(signing.SignatureRejected, match="SignatureNonceUsed"):
        _verify(dict(headers), nonce_seen=seen)


def test_verifier_requires_the_security_headers_to_be_signed():
    headers = _signed()
    # Re-sign without x-acs-signature-nonce in SignedHeaders: a replayable request must not pass.
    signed = {k: v for k, v in headers.items() if k not in ("Authorization", "x-acs-signature-nonce")}
    canonical, names = signing.canonical_request(
        method="POST",
        path="/api/v1/trainingjobs",
        query="",
        headers=signed,
        payload_hash=headers["x-acs-content-sha256"],
    )
    headers["Authorization"] = (
        f"ACS3-HMAC-SHA256 Credential=AKID,SignedHeaders={names},"
        f"Signature={signing.signature(SECRET, signing.string_to_sign(canonical))}"
    )
    with pytest.raises(signing.SignatureRejected, match="x-acs-signature-nonce"):
        _verify(headers)


def test_rejections_never_quote_the_secret_or_the_expected_signature():
    headers = _signed(secret="wrong")
    with pytest.raises(signing.SignatureRejected) as refused:
        _verify(headers)
    text = str(refused.value) + refused.value.message
    assert SECRET not in text and "wrong" not in text
    assert headers["Authorization"].rsplit("=", 1)[1] not in text
