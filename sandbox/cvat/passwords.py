"""Django-style password validation as CVAT's AUTH_PASSWORD_VALIDATORS applies it."""

from __future__ import annotations

import re
from difflib import SequenceMatcher

MIN_LENGTH = 8
MAX_SIMILARITY = 0.7

# A few hundred of the most common passwords (Django ships ~20 000; these cover the usual suspects).
_COMMON = """
123456 password 12345678 qwerty 123456789 12345 1234 111111 1234567 dragon 123123 baseball abc123
football monkey letmein 696969 shadow master 666666 qwertyuiop 123321 mustang 1234567890 michael
654321 superman 1qaz2wsx 7777777 121212 000000 qazwsx 123qwe killer trustno1 jordan jennifer
zxcvbnm asdfgh hunter buster soccer harley batman andrew tigger sunshine iloveyou 2000 charlie
robert thomas hockey ranger daniel starwars klaster 112233 george computer michelle jessica pepper
1111 zxcvbn 555555 11111111 131313 freedom 777777 pass maggie 159753 aaaaaa ginger princess joshua
cheese amanda summer love ashley nicole chelsea biteme matthew access yankees 987654321 dallas
austin thunder taylor matrix mobilemail mom monitor monitoring montana moon moscow passw0rd
password1 password12 password123 password1234 welcome welcome1 welcome123 admin admin123 admin1234
administrator root toor qwerty123 qwerty1 qwerty12 qwertyui 1q2w3e4r 1q2w3e4r5t 1q2w3e4r5t6y 1q2w3e
zaq12wsx zaq1zaq1 zaq1xsw2 q1w2e3r4 q1w2e3r4t5 q1w2e3 qwer1234 asdf1234 asdfasdf asdfghjkl
changeme secret default guest login abcdef abcd1234 abc12345 abcdefg abcdefgh iloveyou1 football1
baseball1 superman1 letmein1 88888888 99999999 00000000 12341234 11223344 87654321 123123123
123654789 147258369 159357 147852369 741852963 963852741 1234qwer qwerty12345 zxcvbnm1 passpass
p@ssw0rd p@ssword pa55word pa$$word sunshine1 princess1 charlie1 shadow1 master1 dragon1 monkey1
michael1 jessica1 whatever starwars1 hello123 hello hellohello internet samsung google apple
iphone killer1 cookie flower hannah liverpool arsenal chelsea1 barcelona qwe123 qwe123qwe 1qazxsw2
123abc test test123 test1234 testing testtest user user123 demo demo123 letmein123 secret123
trustno11 mypassword mypass 1password 123password password! password01 passwd passwort
motdepasse contrasena parola haslo salasana lozinka 11111 22222222 33333333 44444444 55555555
66666666 77777777 12121212 1212 1313 2112 6969 7777 8888 9999 0000 101010 123qweasd qweasd
qweasdzxc asdzxc zxcasd 1q1q1q1q 1qaz1qaz 2wsx3edc 3edc4rfv 147258 258456 456789 789456 852456
159951 753951 135790 246810 098765 0987654321 121314 232323 212121 202020 112211 010101 100200
1234512345 a1b2c3 a1b2c3d4 aa123456 aaaaaaaa abcabc abc123456 q12345 q123456 qwert qwerty7
qwertz qwertzuiop azerty azertyuiop ytrewq asdfg asdf zxcv 1q2w 1qaz 2wsx lovely loveme iloveu
iloveyou2 angel angels babygirl baby blink182 buttercup butterfly chocolate daniel1 diamond
dolphin eminem family forever friends fuckyou jasmine jesus jessie joseph junior justin
lauren lovers madison michael12 mickey midnight mylove naruto nathan nicole1 pokemon purple
qazwsxedc rainbow samantha sebastian snoopy spiderman sweety tinkerbell tweety vanessa victoria
william yellow 666666666 999999999 pussy pepper1 zxcvbnm123 cvat annotation annotator candidate
worker manager support service office company system server database oracle mysql postgres
computer1 internet1 windows linux ubuntu debian microsoft letmeinnow trustme nothing unknown
summer2020 summer2021 summer2022 summer2023 winter2020 winter2021 winter2022 spring2022 autumn2022
january february march april june july august september october november december
monday tuesday friday sunday qwerty2020 qwerty2021 password2020 password2021 password2022
""".split()

COMMON_PASSWORDS: frozenset[str] = frozenset(_COMMON)

_VERBOSE_NAMES = {
    "username": "username",
    "first_name": "first name",
    "last_name": "last name",
    "email": "email address",
}


def _exceeds_maximum_length_ratio(password: str, max_similarity: float, value: str) -> bool:
    """Django's shortcut: very long passwords are never 'similar' to short attributes."""
    pwd_len = len(password)
    length_bound_similarity = max_similarity / 2 * pwd_len
    value_len = len(value)
    return pwd_len >= 10 * value_len and value_len < length_bound_similarity


def similarity_errors(password: str, attributes: dict[str, str]) -> list[str]:
    """Return Django UserAttributeSimilarityValidator's error (at most one) for these attributes."""
    pwd = password.lower()
    for name in ("username", "first_name", "last_name", "email"):
        value = attributes.get(name)
        if not value or not isinstance(value, str):
            continue
        value_lower = value.lower()
        parts = [*re.split(r"\W+", value_lower), value_lower]
        for part in parts:
            if _exceeds_maximum_length_ratio(pwd, MAX_SIMILARITY, part):
                continue
            if SequenceMatcher(a=pwd, b=part).quick_ratio() >= MAX_SIMILARITY:
                return [f"The password is too similar to the {_VERBOSE_NAMES[name]}."]
    return []


def password_errors(password: str) -> list[str]:
    """Return the user-independent validator errors in CVAT's validator order."""
    errors: list[str] = []
    if len(password) < MIN_LENGTH:
        errors.append(
            f"This password is too short. It must contain at least {MIN_LENGTH} characters."
        )
    if password.lower().strip() in COMMON_PASSWORDS:
        errors.append("This password is too common.")
    if password.isdigit():
        errors.append("This password is entirely numeric.")
    return errors
