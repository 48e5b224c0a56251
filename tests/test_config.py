"""Configuration from the environment: defaults, overrides, and bad values named in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from search_service.config import Config, ConfigError
from search_service.engine import UnknownEngineError, engine_name, open_engine


def test_environment_then_overrides() -> None:
    env = {
        "SEARCH_SERVICE_INDEX": "/srv/index",
        "SEARCH_SERVICE_WRITE_TIMEOUT": "2.5",
        "SEARCH_SERVICE_MAX_REQUEST_BYTES": "1024",
        "SEARCH_SERVICE_RATE_LIMIT": "off",
        "SEARCH_SERVICE_CACHE_MB": "256",
    }
    config = Config.from_env(env, index_dir=Path("/other"))
    assert config.index_dir == Path("/other")
    assert (config.write_timeout, config.max_request_bytes, config.rate_limit) == (2.5, 1024, None)
    assert config.engine == "whoosh" and config.cache_mb == 256


@pytest.mark.parametrize(
    "name, value",
    [
        ("SEARCH_SERVICE_MAX_REQUEST_BYTES", "8M"),
        ("SEARCH_SERVICE_MAX_REQUEST_BYTES", "-1"),
        ("SEARCH_SERVICE_WRITE_TIMEOUT", "soon"),
        ("SEARCH_SERVICE_WRITE_TIMEOUT", "0"),
        ("SEARCH_SERVICE_CACHE_MB", "1G"),
    ],
)
def test_a_bad_number_names_the_variable_and_the_value(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Config.from_env({name: value})
    message = str(raised.value)
    assert name in message and repr(value) in message and "\n" not in message


@pytest.mark.parametrize(
    "setting, name", [("whoosh", "whoosh"), ("xapian:/srv/db", "xapian"), ("xapian+tcp://a:1,b:2", "xapian")]
)
def test_the_engine_name_is_what_comes_before_the_address(setting: str, name: str) -> None:
    assert engine_name(Config(engine=setting)) == name


def test_an_unknown_engine_says_which_there_are() -> None:
    with pytest.raises(UnknownEngineError, match=r"SEARCH_SERVICE_ENGINE='lucene'.*whoosh"):
        open_engine(Config(engine="lucene"))


def test_a_missing_index_says_how_to_build_one(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"search-service index PATH --index"):
        open_engine(Config(index_dir=tmp_path / "none"))


def test_partial_results_switch() -> None:
    assert Config.from_env({}).partial is True
    assert Config.from_env({"SEARCH_SERVICE_PARTIAL": "off"}).partial is False
    assert Config.from_env({"SEARCH_SERVICE_PARTIAL": " On "}).partial is True
    with pytest.raises(ConfigError, match=r"SEARCH_SERVICE_PARTIAL must be on or off, not 'maybe'"):
        Config.from_env({"SEARCH_SERVICE_PARTIAL": "maybe"})


@pytest.mark.parametrize(
    "setting",
    [
        "xapian+tcp://",
        "xapian+tcp://host",
        "xapian+tcp://host:port",
        "xapian+tcp://a:1,b:99999",
        "xapian+tcp://a:1|:2",
        "xapian+udp://a:1",
    ],
)
def test_a_bad_shard_list_names_the_variable(setting: str) -> None:
    with pytest.raises(ConfigError, match="SEARCH_SERVICE_ENGINE"):
        open_engine(Config(engine=setting))


def test_shards_and_replicas_are_read_in_order() -> None:
    from search_service.backends.xapian.shards import Copy, topology

    topo = topology(Config(engine="xapian+tcp://a:1|b:2,c:3,[::1]:4"))
    assert topo.shards == ((Copy("a", 1), Copy("b", 2)), (Copy("c", 3),), (Copy("::1", 4),))
    assert topology(Config(engine="xapian", index_dir=Path("/srv/x"))).path == Path("/srv/x")
    assert topology(Config(engine="xapian:/srv/db")).path == Path("/srv/db")


def test_a_missing_xapian_database_says_how_to_build_one(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"search-service index PATH --engine xapian:"):
        open_engine(Config(engine=f"xapian:{tmp_path / 'none'}"))
