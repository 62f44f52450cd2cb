"""The customer command parser: a labelled table of what customers really type."""

import pytest

from bot.customers import commands
from bot.customers.commands import (
    COACH,
    CODE,
    DEVICES,
    HELP,
    HISTORY,
    KEYWORDS,
    LANG,
    RESEND,
    START,
    STATUS,
    STOP,
    UNKNOWN,
    Command,
    parse,
)

UNKNOWN_COMMAND = Command(UNKNOWN)

CASES = [
    # label, text, expected
    ("bare keyword", "CODE", Command(CODE)),
    ("lower case", "code", Command(CODE)),
    ("mixed case and spaces", "  Code  ", Command(CODE)),
    ("trailing full stop", "code.", Command(CODE)),
    ("trailing question mark", "code?", Command(CODE)),
    ("trailing exclamation marks", "CODE!!!", Command(CODE)),
    ("newline after keyword", "code\n", Command(CODE)),
    ("plural", "codes", Command(CODE)),
    ("token", "Token", Command(CODE)),
    ("product id", " Code  1001 ", Command(CODE, device="1001")),
    ("hash separator", "CODE#1001", Command(CODE, device="1001")),
    ("colon and serial", "code: OVES001001", Command(CODE, device="OVES001001")),
    ("lower-case serial", "code oves001001", Command(CODE, device="OVES001001")),
    ("hyphenated serial", "code OVES-001001", Command(CODE, device="OVES001001")),
    ("glued product id", "code1001", Command(CODE, device="1001")),
    ("hyphen glued", "CODE-1001", Command(CODE, device="1001")),
    ("short suffix", "code 001", Command(CODE, device="001")),
    ("one digit", "code 2", Command(CODE, device="2")),
    ("tab separated", "code\t1001", Command(CODE, device="1001")),
    ("full-width digits", "code １００１", Command(CODE, device="1001")),
    ("slash", "/code", Command(CODE)),
    ("slash with device", "/code 1001", Command(CODE, device="1001")),
    ("telegram bot suffix", "/code@MyBot 1001", Command(CODE, device="1001")),
    ("telegram bot suffix alone", "/status@oves_token_bot", Command(STATUS)),
    ("french jeton", "jeton 1001", Command(CODE, device="1001")),
    ("swahili namba", "NAMBA", Command(CODE)),
    ("swahili msimbo", "msimbo OVES001001", Command(CODE, device="OVES001001")),
    ("swahili tokeni", "Tokeni", Command(CODE)),
    ("resend", "RESEND", Command(RESEND)),
    ("again", "again 1001", Command(RESEND, device="1001")),
    ("send again phrase", "send again", Command(RESEND)),
    ("french renvoyer", "Renvoyer", Command(RESEND)),
    ("swahili tuma", "tuma 1001", Command(RESEND, device="1001")),
    ("swahili tuma tena phrase", "tuma tena 1001", Command(RESEND, device="1001")),
    ("status", "STATUS", Command(STATUS)),
    ("balance", "balance 1001", Command(STATUS, device="1001")),
    ("days", "days", Command(STATUS)),
    ("french solde", "solde", Command(STATUS)),
    ("french statut", "STATUT 1001", Command(STATUS, device="1001")),
    ("french jours", "jours", Command(STATUS)),
    ("swahili salio", "salio", Command(STATUS)),
    ("swahili hali", "HALI OVES001001", Command(STATUS, device="OVES001001")),
    ("swahili siku", "siku", Command(STATUS)),
    ("history", "history", Command(HISTORY)),
    ("french historique", "historique 1001", Command(HISTORY, device="1001")),
    ("swahili historia", "Historia", Command(HISTORY)),
    ("devices", "DEVICES", Command(DEVICES)),
    ("french appareils", "appareils", Command(DEVICES)),
    ("swahili vifaa", "vifaa", Command(DEVICES)),
    ("help", "HELP", Command(HELP)),
    ("help with words", "help me please", Command(HELP)),
    ("question mark", "?", Command(HELP)),
    ("question marks", " ?? ", Command(HELP)),
    ("info", "info", Command(HELP)),
    ("french aide", "Aide", Command(HELP)),
    ("swahili msaada", "msaada", Command(HELP)),
    ("slash help", "/help", Command(HELP)),
    ("lang alone", "LANG", Command(LANG)),
    ("lang en", "lang en", Command(LANG, argument="en")),
    ("lang FR", "LANG FR", Command(LANG, argument="fr")),
    ("lang sw", "/lang sw", Command(LANG, argument="sw")),
    ("language english", "language English", Command(LANG, argument="en")),
    ("langue français", "langue français", Command(LANG, argument="fr")),
    ("langue francais", "LANGUE FRANCAIS", Command(LANG, argument="fr")),
    ("lugha kiswahili", "lugha kiswahili", Command(LANG, argument="sw")),
    ("lang swahili", "lang swahili", Command(LANG, argument="sw")),
    ("lang colon", "lang: fr", Command(LANG, argument="fr")),
    ("lang unsupported", "LANG xx", Command(LANG)),
    ("lang unsupported word", "lang german", Command(LANG)),
    ("lang two values", "lang en fr", UNKNOWN_COMMAND),
    ("start", "START", Command(START)),
    ("telegram start", "/start", Command(START)),
    ("telegram start deep link", "/start abc123", Command(START)),
    ("unstop", "unstop", Command(START)),
    ("swahili anza", "anza", Command(START)),
    ("french démarrer", "Démarrer", Command(START)),
    ("french demarrer", "DEMARRER", Command(START)),
    ("french reprendre", "reprendre", Command(START)),
    ("telegram stop", "/stop", Command(STOP)),
    ("telegram swahili stop", "/simama", Command(STOP)),
    ("french arrêter", "Arrêter svp", Command(STOP)),
    ("stop", "STOP", Command(STOP)),
    ("stop lower", "stop", Command(STOP)),
    ("stop with words", "Stop sending me messages", Command(STOP)),
    ("stopall", "STOPALL", Command(STOP)),
    ("unsubscribe", "unsubscribe", Command(STOP)),
    ("cancel", "Cancel", Command(STOP)),
    ("end", "END", Command(STOP)),
    ("quit", "quit", Command(STOP)),
    ("french arrêt", "ARRÊT", Command(STOP)),
    ("french arret", "arret", Command(STOP)),
    ("swahili simama", "simama", Command(STOP)),
    # Junk.
    ("empty", "", UNKNOWN_COMMAND),
    ("spaces", "    ", UNKNOWN_COMMAND),
    ("punctuation only", "...!!", UNKNOWN_COMMAND),
    ("emoji", "\U0001f600", UNKNOWN_COMMAND),
    ("two emoji", "\U0001f600\U0001f44d", UNKNOWN_COMMAND),
    ("greeting", "hello", UNKNOWN_COMMAND),
    ("sentence", "my light is not working", UNKNOWN_COMMAND),
    ("keyword not first", "please code", UNKNOWN_COMMAND),
    ("sql injection", "'; DROP TABLE customers;--", UNKNOWN_COMMAND),
    ("sql after keyword", "code 1001; DROP TABLE customers;--", UNKNOWN_COMMAND),
    ("sql quote after keyword", "code ' OR 1=1 --", UNKNOWN_COMMAND),
    ("html", "<script>alert(1)</script>", UNKNOWN_COMMAND),
    ("html after keyword", "code <script>", UNKNOWN_COMMAND),
    ("two devices", "code 1001 1002", UNKNOWN_COMMAND),
    ("word after keyword", "code please", UNKNOWN_COMMAND),
    ("letters-only argument", "status OVES", UNKNOWN_COMMAND),
    ("device too long", "code " + "1" * 25, UNKNOWN_COMMAND),
    ("non-latin argument", "code \u043a\u043e\u0434", UNKNOWN_COMMAND),
    ("non-ascii digits", "code \u0661\u0662\u0663", UNKNOWN_COMMAND),
    ("devices with argument", "devices 1001", UNKNOWN_COMMAND),
    ("keyword glued to letters", "codex", UNKNOWN_COMMAND),
    ("email-like", "code@example.com", UNKNOWN_COMMAND),
    ("161 characters", "code " + " " * 156, UNKNOWN_COMMAND),
    ("10k characters", "CODE " + "A" * 10_000, UNKNOWN_COMMAND),
    ("10k spaces", " " * 10_000, UNKNOWN_COMMAND),
    ("null bytes", "\x00\x00", UNKNOWN_COMMAND),
    ("cyrillic word", "\u043f\u0440\u0438\u0432\u0435\u0442", UNKNOWN_COMMAND),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parse(text, expected):
    assert parse(text) == expected


def test_table_is_big_and_labels_unique():
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("lang", sorted(KEYWORDS))
def test_every_keyword_in_every_language_parses_to_its_command(lang):
    for name, words in KEYWORDS[lang].items():
        for word in words:
            assert parse(word) == Command(name), (lang, word)
            assert parse("/" + word.lower()) == Command(name), (lang, word)


@pytest.mark.parametrize("lang", sorted(KEYWORDS))
def test_every_device_keyword_takes_a_device(lang):
    for name in (CODE, RESEND, STATUS, HISTORY):
        for word in KEYWORDS[lang][name]:
            assert parse(f"{word} oves001001") == Command(name, device="OVES001001")


def test_every_language_offers_every_command():
    for lang, by_command in KEYWORDS.items():
        assert set(by_command) == set(commands.NAMES) - {UNKNOWN, *commands.SHAPES}, lang


def test_parse_never_raises_on_non_text():
    assert parse(None) == UNKNOWN_COMMAND  # type: ignore[arg-type]
    assert parse(b"CODE") == UNKNOWN_COMMAND  # type: ignore[arg-type]


def test_command_is_frozen():
    with pytest.raises(AttributeError):
        Command(CODE).name = STOP  # type: ignore[misc]


# --- a code typed back to us: the code coach (bot/customers/coach.py) -------------------

CODE_DIGITS = "024413975593119504641"  # OMNIVOLTAIC.md section 2's test vector
COACH_CASES = [
    pytest.param("*024 413 975 593 119 504 641#", CODE_DIGITS, id="as the API gives it"),
    pytest.param(CODE_DIGITS, CODE_DIGITS, id="digits only"),
    pytest.param("*024413975593119504641#", CODE_DIGITS, id="star and hash, no spaces"),
    pytest.param("024-413-975-593-119-504-641", CODE_DIGITS, id="dashes"),
    pytest.param(" *024 413-975 593\n119 504 641 # ", CODE_DIGITS, id="mixed separators"),
    pytest.param("**024 413 975 593 119 504 641##", CODE_DIGITS, id="doubled star and hash"),
    pytest.param("*024 413 975 593 119 504 64#", CODE_DIGITS[:-1], id="20 digits: a mistype"),
    pytest.param("*024 413 975 593 119 504 6411#", CODE_DIGITS + "1", id="22 digits: a mistype"),
    pytest.param("1" * 21, "1" * 21, id="any 21 digits"),
]


@pytest.mark.parametrize("text, digits", COACH_CASES)
def test_a_code_typed_back_is_for_the_coach(text, digits):
    assert parse(text) == Command(COACH, argument=digits)


NOT_CODES = [
    pytest.param("1" * 19, UNKNOWN_COMMAND, id="19 digits"),
    pytest.param("1" * 23, UNKNOWN_COMMAND, id="23 digits"),
    pytest.param("*" + "1" * 23 + "#", UNKNOWN_COMMAND, id="23 digits in star and hash"),
    pytest.param("1001", UNKNOWN_COMMAND, id="a bare product id"),
    pytest.param("+254712345678", UNKNOWN_COMMAND, id="a phone number"),
    pytest.param("2468", UNKNOWN_COMMAND, id="a PIN (USSD is another flow)"),
    pytest.param("*384*1#", UNKNOWN_COMMAND, id="a USSD string"),
    pytest.param("CODE 1001", Command(CODE, device="1001"), id="CODE and a product id"),
    pytest.param("code#1001", Command(CODE, device="1001"), id="CODE, hash, product id"),
    pytest.param("*024 413 975 593 119 504 64I#", UNKNOWN_COMMAND, id="a letter among digits"),
    pytest.param("*024.413.975.593.119.504.641#", UNKNOWN_COMMAND, id="full stops"),
    pytest.param("\uff10" * 21, UNKNOWN_COMMAND, id="full-width digits"),
    pytest.param("\u0661" * 21, UNKNOWN_COMMAND, id="arabic-indic digits"),
    pytest.param("1 " * 80 + "1", UNKNOWN_COMMAND, id="longer than an SMS"),
    pytest.param("*#", UNKNOWN_COMMAND, id="star and hash alone"),
]


@pytest.mark.parametrize("text, expected", NOT_CODES)
def test_what_is_not_a_code_keeps_its_parse(text, expected):
    assert parse(text) == expected
