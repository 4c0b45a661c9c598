"""Settings from the environment: the database timeouts take seconds, 0 is no limit, and a bad value stops the
process at start with the variable named, rather than failing every connection later."""

from __future__ import annotations

import pytest

from bpm.config import DatabaseTimeouts, Settings

TIMEOUT_VARIABLES = ["BPM_DB_STATEMENT_TIMEOUT", "BPM_DB_LOCK_TIMEOUT", "BPM_DB_IDLE_IN_TRANSACTION_TIMEOUT"]


def test_the_database_timeouts_default_to_30_10_and_60_seconds():
    timeouts = Settings.from_env({}).database_timeouts
    assert timeouts == DatabaseTimeouts(statement=30, lock=10, idle_in_transaction=60)
    assert Settings().database_timeouts == timeouts


def test_the_database_timeouts_are_read_in_seconds_and_an_empty_value_keeps_the_default():
    timeouts = Settings.from_env({"BPM_DB_STATEMENT_TIMEOUT": "12.5", "BPM_DB_LOCK_TIMEOUT": " 0.2 ",
                                  "BPM_DB_IDLE_IN_TRANSACTION_TIMEOUT": ""}).database_timeouts
    assert timeouts == DatabaseTimeouts(statement=12.5, lock=0.2, idle_in_transaction=60)


def test_zero_means_no_limit_and_is_kept():
    timeouts = Settings.from_env(dict.fromkeys(TIMEOUT_VARIABLES, "0")).database_timeouts
    assert timeouts == DatabaseTimeouts(statement=0, lock=0, idle_in_transaction=0)


@pytest.mark.parametrize("variable", TIMEOUT_VARIABLES)
@pytest.mark.parametrize("value", ["-1", "ten", "30s", "nan", "inf", "3000000"])
def test_a_negative_non_numeric_or_too_large_timeout_is_refused_naming_the_variable(variable, value):
    with pytest.raises(ValueError, match=f"^{variable} must be a number of seconds .*'{value}'"):
        Settings.from_env({variable: value})
