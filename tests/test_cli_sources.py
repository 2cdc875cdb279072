"""``flask sources …``: provisioning sources and tokens from a shell."""

from __future__ import annotations

import json

from app.services import sources


def test_create_json_prints_credentials_that_work(app, runner):
    result = runner.invoke(
        args=[
            "sources",
            "create",
            "Community forum",
            "--kind",
            "generic",
            "--callback-url",
            "https://forum.example.org/cb",
            "--json",
        ]
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert set(created) == {"id", "slug", "token", "webhook_secret"}
    assert created["slug"] == "community-forum"
    with app.app_context():
        token = sources.authenticate_token(created["token"])
        assert token is not None and token.source_id == created["id"]
        assert sources.webhook_secret(token.source) == created["webhook_secret"]


def test_create_without_json_prints_readable_lines(runner):
    result = runner.invoke(args=["sources", "create", "Forum"])
    assert result.exit_code == 0
    assert "API token:      mti_" in result.stdout and "not shown again" in result.stdout


def test_bad_kind_exits_with_a_clear_message(runner):
    result = runner.invoke(args=["sources", "create", "Forum", "--kind", "nonsense", "--json"])
    assert result.exit_code != 0
    assert "Unknown kind 'nonsense'. Choose one of: generic, discourse," in result.output
    assert runner.invoke(args=["sources", "list", "--json"]).stdout.strip() == "[]"


def test_list_token_revoke_and_disable(app, runner):
    runner.invoke(args=["sources", "create", "Forum"])
    listed = json.loads(runner.invoke(args=["sources", "list", "--json"]).stdout)
    assert [(s["slug"], s["active_tokens"], s["enabled"]) for s in listed] == [("forum", 1, True)]
    assert "forum" in runner.invoke(args=["sources", "list"]).stdout

    issued = runner.invoke(args=["sources", "token", "Forum", "--name", "staging"])
    assert issued.exit_code == 0
    raw = issued.stdout.strip()
    with app.app_context():
        token_id = sources.authenticate_token(raw).id
    listed = json.loads(runner.invoke(args=["sources", "list", "--json"]).stdout)
    assert [t["name"] for t in listed[0]["tokens"]] == ["first token", "staging"]
    assert listed[0]["tokens"][1]["id"] == token_id

    revoked = runner.invoke(args=["sources", "revoke-token", str(token_id)])
    assert revoked.exit_code == 0 and "Revoked token" in revoked.stdout
    with app.app_context():
        assert sources.authenticate_token(raw) is None

    assert runner.invoke(args=["sources", "disable", "forum"]).exit_code == 0
    listed = json.loads(runner.invoke(args=["sources", "list", "--json"]).stdout)
    assert listed[0]["enabled"] is False


def test_unknown_source_or_token_exits_non_zero(runner):
    for args in (
        ["sources", "token", "nope"],
        ["sources", "revoke-token", "999"],
        ["sources", "disable", "nope"],
    ):
        result = runner.invoke(args=args)
        assert result.exit_code != 0
        assert "flask sources list" in result.output or "no API token" in result.output
