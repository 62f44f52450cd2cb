"""Reply templates: loading, fallback, placeholder checks, and the GSM-7 promise.

Also the tests of bot/text/gsm7.py, which exists for this promise.
"""

import pytest

from bot.text import gsm7
from bot.text.templates import Messages, MessagesError, placeholders

# The contract with the conversation code: every key and the placeholders it takes.
KEYS = {
    "code_minted": {"code", "device", "days", "until"},
    "codes_minted_many": {"count", "device"},
    "codes_resent_many": {"count", "device"},
    "codes_held": {"device", "held"},
    "code_part": {"index", "count", "code", "days"},
    "code_latest": {"code", "device", "date"},
    "code_resent": {"code", "device", "date"},
    "no_code_yet": {"device"},
    "api_unavailable": set(),
    "code_pending": {"device"},
    "code_refused": {"device"},
    "status_active": {"device", "days_left", "until", "unredeemed", "last_date"},
    "status_expired": {"device", "until", "unredeemed", "last_date"},
    "status_free": {"device"},
    "status_locked": {"device"},
    "history_header": {"device"},
    "history_line": {"date", "days", "code"},
    "history_line_free": {"date", "code"},
    "history_line_reset": {"date", "code"},
    "history_empty": set(),
    "devices_header": set(),
    "devices_line": {"ref", "serial"},
    "choose_device": {"refs"},
    "unknown_device": set(),
    "not_registered": set(),
    "help": set(),
    "lang_set": set(),
    "lang_choose": set(),
    "opted_in": set(),
    "opted_out": set(),
    "error_try_again": set(),
    "telegram_share_contact": set(),
    "telegram_share_button": set(),
    "telegram_linked": {"name"},
    "telegram_contact_not_yours": set(),
    "telegram_contact_unknown": set(),
    **{
        f"telegram_command_{name}": set()
        for name in ("code", "resend", "status", "history", "devices", "lang", "help", "stop")
    },
}

CODE_KEYS = (
    "code_minted",
    "code_latest",
    "code_resent",
    "code_part",
    "history_line",
    "history_line_free",
    "history_line_reset",
)
# Messages sent beside codes, each an SMS of its own.
BESIDE_CODES = ("codes_held", "codes_resent_many", "codes_minted_many")

LONGEST_CODE = "*024 413 975 593 119 504 641#"
LONGEST_DATE = "2029-12-31"
LONG_VALUES = {
    "code": LONGEST_CODE,
    "days": 1095,
    "until": LONGEST_DATE,
    "date": LONGEST_DATE,
    "index": 99,
    "count": 99,
    "days_left": 10950,
    "unredeemed": 10950,
    "last_date": LONGEST_DATE,
    "refs": "1001, 1002, 1003, 1004",
    "ref": "1001",
    "serial": "OVESX0010011",
    "name": "Wanjiku Achieng Kamau",
    "held": 3650,
}
DEVICES = ("OVES001001", "OVESX0010011")  # a real serial and a 12-character one

# --- the code coach (bot/customers/coach.py) -------------------------------------------
# A group is 1 to 7; superseded codes come one per SMS (coach_part) after their header.
KEYS.update(
    {
        "coach_newest": {"device"},
        "coach_other_device": {"device", "serial"},
        "coach_superseded": {"device", "code"},
        "coach_superseded_many": {"device", "count"},
        "coach_part": {"index", "count", "code"},
        "coach_near_wrong": {"group", "device", "code"},
        "coach_near_two": {"group", "other", "device", "code"},
        "coach_near_missing": {"group", "device", "code"},
        "coach_near_extra": {"group", "device", "code"},
        "coach_not_ours": set(),
    }
)
CODE_KEYS += (
    "coach_superseded",
    "coach_part",
    "coach_near_wrong",
    "coach_near_two",
    "coach_near_missing",
    "coach_near_extra",
)
BESIDE_CODES += ("coach_newest", "coach_other_device", "coach_superseded_many", "coach_not_ours")
LONG_VALUES.update(group=7, other=7)
# --- Reminders before credit runs out (issue 13) ----------------------------------------
KEYS |= {
    "reminder_pay": {"account"},
    "reminder_soon": {"device", "days", "until", "pay"},
    "reminder_today": {"device", "time", "pay"},
    "reminder_locked": {"device", "until", "pay"},
}
LONGEST_ACCOUNT = "OVESX0010011000"  # a 15-character serial as the account number
LONG_VALUES |= {"account": LONGEST_ACCOUNT, "time": "23:59", "pay": "-"}


@pytest.fixture(scope="module")
def messages():
    return Messages.load()


def write(tmp_path, lang, text):
    (tmp_path / f"{lang}.toml").write_text(text, encoding="utf-8")


# --- the shipped templates -----------------------------------------------------------


def test_languages(messages):
    assert messages.languages() == ("en", "fr", "sw")


def test_english_keys_and_placeholders_are_the_contract(messages):
    english = messages.templates["en"]
    # ussd_* keys are the agent menu's contract: tests/agents/test_menu.py checks them.
    assert {
        key: set(placeholders(t)) for key, t in english.items() if not key.startswith("ussd_")
    } == KEYS


@pytest.mark.parametrize("lang", ["fr", "sw"])
def test_translations_are_complete(messages, lang):
    # Every key, the agent menu's ussd_* ones included: nothing falls back to English.
    assert set(messages.templates[lang]) == set(messages.templates["en"])
    assert set(KEYS) <= set(messages.templates[lang])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("key", CODE_KEYS)
@pytest.mark.parametrize("lang", ["en", "fr", "sw"])
def test_a_reply_with_a_code_fits_one_gsm7_sms(messages, lang, key, device):
    text = messages.render(lang, key, device=device, **LONG_VALUES)
    assert LONGEST_CODE in text
    assert gsm7.is_gsm7(text), [ch for ch in text if not gsm7.is_gsm7(ch)]
    assert gsm7.septets(text) <= 160, (gsm7.septets(text), text)
    assert gsm7.fits_one_sms(text)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("key", BESIDE_CODES)
@pytest.mark.parametrize("lang", ["en", "fr", "sw"])
def test_a_message_sent_beside_codes_fits_one_gsm7_sms(messages, lang, key, device):
    text = messages.render(lang, key, device=device, **LONG_VALUES)
    assert gsm7.fits_one_sms(text), (gsm7.septets(text), text)


@pytest.mark.parametrize("key", sorted(KEYS))
@pytest.mark.parametrize("lang", ["en", "fr", "sw"])
def test_every_template_is_gsm7_only(messages, lang, key):
    text = messages.render(lang, key, device=DEVICES[1], **LONG_VALUES)
    assert gsm7.is_gsm7(text), [ch for ch in text if not gsm7.is_gsm7(ch)]


@pytest.mark.parametrize("lang", ["en", "fr", "sw"])
def test_help_fits_one_sms(messages, lang):
    assert gsm7.fits_one_sms(messages.render(lang, "help"))


@pytest.mark.parametrize(
    "lang, name",
    [
        pytest.param("en", "English", id="en"),
        # Every French name of French has a lower-case c cedilla, which GSM-7 lacks: the
        # reply names it by the code the customer typed (LANG fr), in French.
        pytest.param("fr", "Langue choisie: fr.", id="fr"),
        pytest.param("sw", "Kiswahili", id="sw"),
    ],
)
def test_lang_set_is_in_its_own_language_and_gsm7(messages, lang, name):
    text = messages.render(lang, "lang_set")
    assert name in text and gsm7.fits_one_sms(text)
    assert text == text.strip() and not text.isupper()


def test_no_reply_shouts_a_language_name_to_dodge_gsm7():
    assert "FRAN" not in Messages.load().render("fr", "lang_set").upper()


def test_render_fills_placeholders(messages):
    assert (
        messages.render("en", "code_part", index=1, count=2, code="*1#", days=30)
        == "1/2 *1# (30 days)"
    )


def test_unknown_language_falls_back_to_english(messages):
    assert messages.render("de", "help") == messages.render("en", "help")
    assert messages.render(None, "help") == messages.render("en", "help")


def test_language_is_case_insensitive(messages):
    assert messages.render("FR", "help") == messages.render("fr", "help")


def test_unknown_key_is_a_key_error(messages):
    with pytest.raises(KeyError, match="no_such_key"):
        messages.render("fr", "no_such_key")


def test_missing_value_is_a_key_error(messages):
    with pytest.raises(KeyError):
        messages.render("en", "code_resent", device="OVES001001")


# --- loading from another directory ---------------------------------------------------


def test_missing_key_falls_back_to_english(tmp_path):
    write(tmp_path, "en", 'greet = "Hello {name}"\nbye = "Bye"\n')
    write(tmp_path, "fr", 'greet = "Bonjour {name}"\n')
    messages = Messages.load(tmp_path)
    assert messages.languages() == ("en", "fr")
    assert messages.render("fr", "greet", name="Ama") == "Bonjour Ama"
    assert messages.render("fr", "bye") == "Bye"


def test_directory_may_be_a_string(tmp_path):
    write(tmp_path, "en", 'bye = "Bye"\n')
    assert Messages.load(str(tmp_path)).render("en", "bye") == "Bye"


def test_placeholder_mismatch_names_file_and_key(tmp_path):
    write(tmp_path, "en", 'code_resent = "Code for {device}: {code}"\n')
    write(tmp_path, "sw", 'code_resent = "Msimbo wa {devise}: {code}"\n')
    with pytest.raises(MessagesError, match=r"sw\.toml: code_resent uses placeholders"):
        Messages.load(tmp_path)


def test_missing_placeholder_is_a_mismatch(tmp_path):
    write(tmp_path, "en", 'code_resent = "Code for {device}: {code}"\n')
    write(tmp_path, "fr", 'code_resent = "Code: {code}"\n')
    with pytest.raises(MessagesError, match="code_resent"):
        Messages.load(tmp_path)


def test_key_unknown_to_english_is_refused(tmp_path):
    write(tmp_path, "en", 'help = "Help"\n')
    write(tmp_path, "fr", 'aide = "Aide"\n')
    with pytest.raises(MessagesError, match=r"fr\.toml: aide"):
        Messages.load(tmp_path)


def test_english_is_required(tmp_path):
    write(tmp_path, "fr", 'aide = "Aide"\n')
    with pytest.raises(MessagesError, match="en.toml"):
        Messages.load(tmp_path)


@pytest.mark.parametrize(
    "text, problem",
    [
        ('help = "Help {"\n', "not a valid template"),
        ("help = 3\n", "must be a string"),
        ("help = [unclosed\n", "cannot read"),
    ],
)
def test_bad_file_names_file_and_problem(tmp_path, text, problem):
    write(tmp_path, "en", text)
    with pytest.raises(MessagesError, match=problem):
        Messages.load(tmp_path)


def test_placeholders():
    assert placeholders("{a} and {b:>3} and {c.d} {{literal}}") == {"a", "b", "c"}


# --- bot/text/gsm7.py ----------------------------------------------------------------


def test_basic_table_has_127_characters_besides_escape():
    assert len(gsm7.BASIC) == 127
    assert len(gsm7.EXTENSION) == 10
    assert not gsm7.BASIC & gsm7.EXTENSION


@pytest.mark.parametrize(
    "text, ok, count",
    [
        ("", True, 0),
        ("Hello", True, 5),
        ("*024 413 975 593 119 504 641#", True, 29),
        ("é è à ù ì ò É Ç", True, 15),
        ("Ä Ö Ñ Ü ä ö ñ ü ß Å å Æ æ Ø ø", True, 29),
        ("@£$¥¤§¡¿_!\"#%&'()*+,-./:;<=>?", True, 29),
        ("ΔΦΓΛΩΠΨΣΘΞ", True, 10),
        ("line\nbreak\r", True, 11),
        ("€", True, 2),
        ("10€", True, 4),
        ("[]{}|\\^~", True, 16),
        ("\f", True, 2),
    ],
)
def test_gsm7_septets(text, ok, count):
    assert gsm7.is_gsm7(text) is ok
    assert gsm7.septets(text) == count


@pytest.mark.parametrize(
    "text",
    [
        "ç",
        "ê",
        "â",
        "î",
        "ô",
        "û",
        "ë",
        "ï",
        "œ",
        "á",
        "í",
        "ó",
        "ú",
        "\u2019",
        "\u201c",
        "\u2026",
        "\u2014",
        "`",
        "\t",
        "\x1b",
        "\U0001f600",
        "\u043a",
        "\u4e2d",
        "Français",
    ],
)
def test_not_gsm7(text):
    assert not gsm7.is_gsm7(text)
    assert not gsm7.fits_one_sms(text)
    with pytest.raises(ValueError, match="GSM-7"):
        gsm7.septets(text)


def test_fits_one_sms_counts_septets_not_characters():
    assert gsm7.fits_one_sms("a" * 160)
    assert not gsm7.fits_one_sms("a" * 161)
    assert gsm7.fits_one_sms("a" * 158 + "€")
    assert not gsm7.fits_one_sms("a" * 159 + "€")


# --- the packaged wording and OVBOT_CONFIG_DIR -----------------------------------------


def test_the_packaged_wording_is_read_as_package_data():
    """config/messages ships as the package bot.config (setup.py): found by importlib,
    not by a path from the source tree, so a wheel finds it too."""
    from bot.text.templates import packaged

    assert {p.name for p in packaged().iterdir()} >= {"en.toml", "fr.toml", "sw.toml"}
    assert Messages.configured(None) == Messages.load()
    assert Messages.load().languages() == ("en", "fr", "sw")


def test_an_operators_copy_replaces_the_wording(tmp_path):
    (tmp_path / "messages").mkdir()
    write(tmp_path / "messages", "en", 'help = "Ask Jane at the shop"\n')
    messages = Messages.configured(str(tmp_path))
    assert messages.render("fr", "help") == "Ask Jane at the shop"  # no fr file: English


def test_a_missing_copy_names_the_setting_and_the_path(tmp_path):
    with pytest.raises(MessagesError) as error:
        Messages.configured(str(tmp_path / "nowhere"))
    assert str(error.value).startswith(f"OVBOT_CONFIG_DIR={tmp_path / 'nowhere'}: ")
    assert str(tmp_path / "nowhere" / "messages") in str(error.value)


def test_a_broken_copy_names_the_setting_and_the_file(tmp_path):
    (tmp_path / "messages").mkdir()
    write(tmp_path / "messages", "en", 'help = "Help"\n')
    write(tmp_path / "messages", "sw", "help = [unclosed\n")
    with pytest.raises(MessagesError, match=r"^OVBOT_CONFIG_DIR=.*sw\.toml: cannot read"):
        Messages.configured(str(tmp_path))


def test_the_cli_refuses_a_broken_copy_plainly(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from bot.cli.main import main

    (tmp_path / "messages").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OVBOT_CONFIG_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["credit", "1001", "5", "--reference", "r1"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"OVBOT_CONFIG_DIR={tmp_path}" in result.output and "en.toml" in result.output


# --- reminders (bot/customers/reminders.py composes them) -------------------------------


@pytest.mark.parametrize("days_left", [None, 0, 1, 2, 30], ids=lambda d: f"days_left={d}")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("lang", ["en", "fr", "sw"])
def test_every_reminder_fits_one_gsm7_sms(messages, lang, device, days_left):
    """A whole reminder, how to pay included, with the longest values: one GSM-7 SMS."""
    from datetime import UTC, datetime

    from bot.customers.reminders import compose

    text = compose(
        messages,
        lang,
        device=device,
        account=LONGEST_ACCOUNT,
        days_left=days_left,
        until=datetime(2029, 12, 31, 23, 59, tzinfo=UTC),
    )
    assert LONGEST_ACCOUNT in text and device in text
    assert ("2029-12-31" in text) == (days_left != 0)
    assert gsm7.is_gsm7(text), [ch for ch in text if not gsm7.is_gsm7(ch)]
    assert gsm7.fits_one_sms(text), (gsm7.septets(text), text)
