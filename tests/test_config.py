"""Configuration: file, environment overrides and errors that name the bad key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sciknow.config import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sciknow.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert config.retrieval.k == 8
    assert config.profile.docs_url == "https://petsc.org/release/"
    assert Path(config.data_dir) == tmp_path / ".sciknow"


def test_file_values_and_relative_paths(tmp_path):
    (tmp_path / "docs").mkdir()
    path = write(
        tmp_path,
        '[[sources]]\nkind = "docs"\npath = "docs"\n[retrieval]\nk = 5\n'
        '[profile]\nname = "slepc"\nsymbol_prefixes = ["EPS", "ST"]\n',
    )
    config = load_config(path, environ={})
    assert config.retrieval.k == 5
    assert config.sources[0].path == str(tmp_path / "docs")
    assert config.sources[0].name == "slepc-docs"
    assert config.profile.symbol_prefixes == ["EPS", "ST"]


def test_environment_overrides(tmp_path):
    path = write(tmp_path, "[retrieval]\nk = 5\n")
    environ = {
        "SCIKNOW_DATA_DIR": "/tmp/elsewhere",
        "SCIKNOW_RETRIEVAL__K": "12",
        "SCIKNOW_MODELS__THREADS": "1",
    }
    config = load_config(path, environ=environ)
    assert config.data_dir == "/tmp/elsewhere"
    assert config.retrieval.k == 12 and config.models.threads == 1


def test_kind_weights_table_from_file_and_environment(tmp_path):
    path = write(tmp_path, "[retrieval.kind_weights]\ncode = 0.5\n")
    assert load_config(path, environ={}).retrieval.kind_weights == {"code": 0.5}
    environ = {"SCIKNOW_RETRIEVAL__KIND_WEIGHTS": "code=0.25, example=1"}
    weights = load_config(path, environ=environ).retrieval.kind_weights
    assert weights == {"code": 0.25, "example": 1.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[retrieval]\nkk = 3\n", "unknown key 'kk' in [retrieval]"),
        ("[retrieval]\nk = 'many'\n", "retrieval.k must be an integer, got 'many'"),
        ("colour = 1\n", "unknown key 'colour' in the top level"),
        ('[[sources]]\nkind = "ftp"\npath = "x"\n', "sources[0].kind = 'ftp' is not one of"),
        ('[[sources]]\nkind = "docs"\n', "sources[0] (docs) needs a path"),
        ("[retrieval\n", "not valid TOML"),
        ("[ingest]\nchunk_overlap = 300\n", "chunk_overlap must be smaller"),
        ('[models]\nbackend = "gpt"\n', "models.backend = 'gpt' is not one of transformers"),
        ('[models]\ndtype = "float16"\n', "models.dtype = 'float16' is not one of auto"),
        ("[retrieval]\nkind_weights = 2\n", "retrieval.kind_weights must be a table, got 2"),
        ("[retrieval.kind_weights]\ncode = 'low'\n", "retrieval.kind_weights.code must be a"),
        ("[retrieval.kind_weights]\nblog = 1.0\n", "unknown kind 'blog'; kinds: code"),
        ("[ingest]\nskip_embedding_kinds = ['src']\n", "skip_embedding_kinds names unknown kind"),
        ("[retrieval]\nfeedback_repeat = 2\n", "feedback_repeat = 2.0 must be between 0 and 1"),
    ],
)
def test_errors_name_the_bad_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(write(tmp_path, text), environ={})


def test_bad_environment_value_is_named(tmp_path):
    with pytest.raises(ConfigError, match=re.escape("retrieval.k must be an integer, got 'x'")):
        load_config(write(tmp_path, ""), environ={"SCIKNOW_RETRIEVAL__K": "x"})


def test_malformed_environment_table_is_named(tmp_path):
    environ = {"SCIKNOW_RETRIEVAL__KIND_WEIGHTS": "code:0.5"}
    with pytest.raises(ConfigError, match=r"kind_weights must be written name=value"):
        load_config(write(tmp_path, ""), environ=environ)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})
