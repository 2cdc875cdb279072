"""``flask users …``: the operator's way to create and manage accounts from the shell."""

from __future__ import annotations

import json

from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner

from tests.factories import (
    PASSWORD,
    audit_events,
    get_user,
    log_in,
    logged_in_email,
    make_user,
    post_form,
)


def create(runner: FlaskCliRunner, *args: str, password: str = PASSWORD) -> Result:
    return runner.invoke(args=["users", "create", "--password-stdin", *args], input=password + "\n")


def test_create_prints_json_and_the_user_can_log_in(app: Flask, runner: FlaskCliRunner) -> None:
    result = create(
        runner, "--email", "Ops@Example.org", "--role", "admin", "--name", "Ops", "--json"
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created == {
        "id": created["id"],
        "email": "ops@example.org",
        "role": "admin",
        "display_name": "Ops",
    }
    assert log_in(app.test_client(), "ops@example.org").status_code == 303
    event = audit_events(app, "user.created")[0]
    assert (event.actor_type, event.actor_label) == ("system", "cli")
    assert "ops@example.org" in result.stdout and PASSWORD not in json.dumps(event.details)


def test_create_without_json_prints_a_sentence(runner: FlaskCliRunner) -> None:
    result = create(runner, "--email", "mod@example.org", "--role", "moderator")
    assert result.exit_code == 0
    assert result.stdout.startswith("Created moderator mod@example.org")


def test_duplicate_email_is_an_error(app: Flask, runner: FlaskCliRunner) -> None:
    make_user(app, "mod@example.org")
    result = create(runner, "--email", "MOD@example.org", "--role", "lead")
    assert result.exit_code == 1
    assert "mod@example.org already has an account" in result.stderr


def test_unknown_role_is_a_usage_error(runner: FlaskCliRunner) -> None:
    result = create(runner, "--email", "x@example.org", "--role", "owner")
    assert result.exit_code == 2
    assert "'owner' is not one of" in result.stderr


def test_short_password_is_refused_with_the_rule(runner: FlaskCliRunner) -> None:
    result = create(runner, "--email", "x@example.org", "--role", "lead", password="short")
    assert result.exit_code == 1
    assert "at least 12 characters" in result.stderr


def test_list_set_role_and_deactivate(app: Flask, runner: FlaskCliRunner) -> None:
    user_id = make_user(app, "mod@example.org")
    assert runner.invoke(args=["users", "set-role", "mod@example.org", "lead"]).exit_code == 0
    assert get_user(app, user_id).role == "lead"
    assert runner.invoke(args=["users", "deactivate", "mod@example.org"]).exit_code == 0
    listed = json.loads(runner.invoke(args=["users", "list", "--json"]).stdout)
    assert [(u["email"], u["role"], u["active"]) for u in listed] == [
        ("mod@example.org", "lead", False)
    ]
    assert "deactivated" in runner.invoke(args=["users", "list"]).stdout
    missing = runner.invoke(args=["users", "deactivate", "nobody@example.org"])
    assert missing.exit_code == 1 and "No user has the email" in missing.stderr
    role_change = audit_events(app, "user.role_changed")[0]
    assert (role_change.actor_label, role_change.details["to"]) == ("cli", "lead")
    assert len(audit_events(app, "user.deactivated")) == 1


def test_the_last_admin_cannot_be_demoted_from_the_shell(
    app: Flask, runner: FlaskCliRunner
) -> None:
    make_user(app, "admin@example.org", "admin")
    result = runner.invoke(args=["users", "set-role", "admin@example.org", "moderator"])
    assert result.exit_code == 1
    assert "last active admin" in result.stderr


def test_reset_link_prints_a_working_url(app: Flask, runner: FlaskCliRunner) -> None:
    make_user(app, "mod@example.org")
    result = runner.invoke(
        args=["users", "reset-link", "mod@example.org", "--base-url", "https://mod.example.org/"]
    )
    assert result.exit_code == 0
    url = result.stdout.strip()
    assert url.startswith("https://mod.example.org/reset/")
    person = app.test_client()
    path = url.removeprefix("https://mod.example.org")
    new = "a new and long passphrase"
    post_form(person, path, {"password": new, "password_again": new}, token_from=path)
    log_in(person, "mod@example.org", new)
    assert logged_in_email(person) == "mod@example.org"
    event = audit_events(app, "user.reset_link_created")[0]
    assert event.actor_label == "cli"
