"""docs/configuration.md says what the config schemas say: every option, type, default and help."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bridge.config import ACCOUNT_SCHEMA, BRIDGE_SCHEMA
from radicale_meetplugin import config
from radicale_meetplugin.providers import schemas

ROOT = Path(__file__).resolve().parents[2]


def generator():
    spec = importlib.util.spec_from_file_location(
        "gen_configuration", ROOT / "docs" / "gen_configuration.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def every_schema() -> dict[str, config.Schema]:
    return {
        "[meetplugin]": config.MAIN_SCHEMA,
        "[mail]": config.MAIL_SCHEMA,
        "[scheduling]": config.SCHEDULING_SCHEMA,
        "[provider:NAME]": config.COMMON_PROVIDER_SCHEMA,
        **{f"[provider:{name}]": schema for name, schema in schemas().items()},
        "[bridge]": BRIDGE_SCHEMA,
        "[account:NAME]": ACCOUNT_SCHEMA,
    }


def test_every_option_has_its_row_on_the_page():
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    gen = generator()
    missing = [
        f"{section} {option}"
        for section, schema in every_schema().items()
        for option, (default, _convert, help_text) in schema.items()
        if f"| `{option}` |" not in page or gen.cell(help_text) not in page
    ]
    assert not missing, f"not in docs/configuration.md (run `make docs`): {missing}"


def test_the_page_is_what_the_generator_makes_of_the_schemas():
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert page == generator().render(), "docs/configuration.md is out of date: run `make docs`"


def test_every_type_is_described_in_words():
    gen = generator()
    for section, schema in every_schema().items():
        for option, (_default, convert, _help) in schema.items():
            described = gen.type_of(convert)
            assert described and "invalid literal" not in described, (section, option)
