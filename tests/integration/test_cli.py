"""The `bpm` command: users, groups, tokens, deploy, and the bootstrap admin token."""

from __future__ import annotations

import pytest
from conftest import FIXTURES

from api import cli
from bpm.config import Settings
from bpm.services import identity


@pytest.fixture
def cli_env(monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    monkeypatch.setenv("BPM_DATABASE_URL", url)
    monkeypatch.setenv("BPM_VAR_DIR", str(tmp_path))
    yield url
    identity.clear_actor_cache()


def uow_for(url):
    from api.context import ServerContext
    from bpm.adapters.db import migrate

    migrate(url)
    return ServerContext.build(Settings(database_url=url)).uow()


def test_user_and_token_commands(cli_env, capsys):
    assert cli.main(["user", "create", "mia", "--roles", "approver", "--groups", "finance,legal"]) == 0
    assert cli.main(["token", "create", "mia", "--scopes", "tasks,read"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    actor = identity.authenticate(token, uow_for(cli_env))
    assert actor.username == "mia" and actor.groups == {"finance", "legal"}
    assert actor.may("tasks") and not actor.may("start")


def test_unknown_role_is_refused(cli_env):
    from bpm.domain.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        cli.main(["user", "create", "zed", "--roles", "wizard"])


def test_deploy_command_reports_versions_and_rejections(cli_env, capsys, tmp_path):
    good = FIXTURES / "bpmn" / "expense_approval.bpmn"
    bad = tmp_path / "bad.bpmn"
    bad.write_text("<not-bpmn/>")
    assert cli.main(["deploy", str(good), str(good)]) == 0
    assert "expense_approval v2" in capsys.readouterr().out
    assert cli.main(["deploy", str(bad)]) == 1
    assert "rejected" in capsys.readouterr().err


def test_bootstrap_admin_token_creates_admin_once(cli_env):
    uow = uow_for(cli_env)
    assert identity.bootstrap_admin("seed-token-123", uow) is True
    assert identity.authenticate("seed-token-123", uow).is_admin
    assert identity.bootstrap_admin("another-token", uow) is False
