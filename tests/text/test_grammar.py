"""bot/text/grammar.py: plural forms and French elision, alone and in the shipped templates."""

from __future__ import annotations

import pytest

from bot.text import grammar
from bot.text.templates import Messages, MessagesError

MESSAGES = Messages.load()


@pytest.mark.parametrize(
    "lang, count, text",
    [
        pytest.param("en", 1, "1 try left", id="en one"),
        pytest.param("en", 2, "2 tries left", id="en two"),
        pytest.param("en", 0, "0 tries left", id="en zero is plural"),
        pytest.param("fr", 1, "1 essai restant", id="fr one"),
        pytest.param("fr", 0, "0 essai restant", id="fr zero is singular"),
        pytest.param("fr", 2, "2 essais restants", id="fr two"),
        pytest.param("sw", 1, "Jaribio 1 limebaki", id="sw one"),
        pytest.param("sw", 2, "Majaribio 2 yamebaki", id="sw two"),
    ],
)
def test_the_pin_hint_agrees_with_the_number(lang, count, text):
    rendered = MESSAGES.render(lang, "ussd_hint_pin_wrong", left=count)
    assert text in rendered
    assert "{" not in rendered and "|" not in rendered


@pytest.mark.parametrize(
    "lang, key, values, text",
    [
        pytest.param("en", "code_part", dict(index=1, count=2, code="*1#", days=1), "(1 day)"),
        pytest.param("en", "code_part", dict(index=1, count=2, code="*1#", days=7), "(7 days)"),
        pytest.param("fr", "code_part", dict(index=1, count=2, code="*1#", days=1), "(1 jour)"),
        pytest.param("fr", "code_part", dict(index=1, count=2, code="*1#", days=7), "(7 jours)"),
        pytest.param(
            "sw",
            "status_active",
            dict(device="1001", days_left=1, until="-", unredeemed=0, last_date="-"),
            "siku 1 imebaki",
        ),
        pytest.param(
            "sw",
            "status_active",
            dict(device="1001", days_left=3, until="-", unredeemed=0, last_date="-"),
            "siku 3 zimebaki",
        ),
    ],
)
def test_day_counts_agree_with_the_number(lang, key, values, text):
    assert text in MESSAGES.render(lang, key, **values)


@pytest.mark.parametrize(
    "name, text",
    [
        pytest.param("Amina", "d'Amina", id="vowel"),
        pytest.param("Émile", "d'Émile", id="accented vowel"),
        pytest.param("Otieno", "d'Otieno", id="O"),
        pytest.param("Hélène", "d'Hélène", id="mute h"),
        pytest.param("Hassan", "d'Hassan", id="h of a given name taken as mute"),
        pytest.param("Yvonne", "d'Yvonne", id="y sounding as a vowel"),
        pytest.param("Yusuf", "de Yusuf", id="y as a consonant"),
        pytest.param("Juma", "de Juma", id="consonant"),
        pytest.param("  amina ", "d'amina", id="lower case, padded"),
        pytest.param("", "de", id="no name"),
    ],
)
def test_french_de_is_elided_before_a_vowel_sound(name, text):
    assert grammar.elide_de(name) == text


@pytest.mark.parametrize(
    "key, values, text",
    [
        pytest.param("telegram_linked", dict(name="Amina"), "Compte d'Amina relié.", id="linked"),
        pytest.param("telegram_linked", dict(name="Juma"), "Compte de Juma relié.", id="linked J"),
        pytest.param(
            "ussd_registered",
            dict(device="OVES001002", name="Imani", phone="+254*****111"),
            "au nom d'Imani +254*****111",
            id="registered",
        ),
    ],
)
def test_french_templates_elide_the_name(key, values, text):
    assert text in MESSAGES.render("fr", key, **values)
    assert "de A" not in MESSAGES.render("fr", key, **dict(values, name="Amina"))


def test_english_and_swahili_keep_the_name_as_given():
    assert "Amina's" in MESSAGES.render("en", "telegram_linked", name="Amina")
    assert "ya Amina" in MESSAGES.render("sw", "telegram_linked", name="Amina")


def test_plain_specs_still_work_and_a_plural_needs_a_number():
    assert grammar.fill("{n:>3}|{n:# a|# b}", "en", {"n": 1}) == "  1|1 a"
    with pytest.raises(ValueError, match="whole number"):
        grammar.fill("{n:# a|# b}", "en", {"n": "one"})


def test_a_fallback_template_follows_english_rules(tmp_path):
    (tmp_path / "en.toml").write_text('left = "{n:# try|# tries}"\n', encoding="utf-8")
    (tmp_path / "fr.toml").write_text("", encoding="utf-8")
    assert Messages.load(tmp_path).render("fr", "left", n=0) == "0 tries"


def test_a_malformed_plural_spec_fails_at_load_naming_the_key(tmp_path):
    (tmp_path / "en.toml").write_text('left = "{n:# a|# b|# c}"\n', encoding="utf-8")
    with pytest.raises(MessagesError, match="left"):
        Messages.load(tmp_path)
