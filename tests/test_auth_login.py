"""POST /api/auth/login/."""


def test_login_returns_a_token_that_authenticates(client, alice):
    response = client.post("/api/auth/login/", {"username": "alice", "password": "alice-pass-1234"},
                           content_type="application/json")
    assert response.status_code == 200
    token = response.json()["token"]
    assert token != alice.token  # a new token per login
    assert client.get("/api/tts/voices/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200


def test_bad_credentials_are_400_with_a_code(client, alice):
    response = client.post("/api/auth/login/", {"username": "alice", "password": "nope"},
                           content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_credentials"


def test_missing_fields(client, db):
    response = client.post("/api/auth/login/", {}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_input"


def test_a_wrong_token_is_401(client, db):
    response = client.get("/api/tts/voices/", HTTP_AUTHORIZATION="Token 0000")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
