"""Russian postal addresses as billing systems write them, reduced to comparable keys.

An account's ``service_address`` is free text («г. Москва, ул. Ленина, д. 1, кв. 2»,
«Тверская область, г. Ржев, ул. Заречная, д. 7», «Москва, Ленина ул., 5а»). Outages name
places by settlement, street and a house specification («1-15», «2-20 чётные», «7а, 9»).
This module turns both into keys that compare equal when they mean the same place:

* text is lower-cased, «ё» becomes «е», quotes, «№» and repeated spaces go; dots after
  abbreviations are optional («г.Москва», «г Москва», «город Москва» are one settlement);
* a part is classified by its marker, before or after the name: settlement (г., город, пос.,
  п., пгт, рп, с., село, д./дер. before a name, станица, хутор, снт), street (ул., улица,
  пр-т/проспект, пер., ш., б-р, пл., наб., пр-д, туп., ал., мкр, линия, тракт, кв-л), house
  (д. before a number, дом, вл.), corpus and building (корп./к., стр.), flat (кв., оф., пом.:
  ignored) and region or district (обл., край, респ., р-н, АО: ignored);
* an unmarked part before the street is the settlement («Москва, ул. Ленина»), an unmarked
  name without a street is the street, and a trailing number is the house («Ленина 5»);
* a street key is its words without «им.»/«имени», ordinal endings dropped («1-я» → «1») and
  sorted («8 Марта» = «Марта 8»); the street type is kept apart, so «ул. Мира» and «пр-т Мира»
  are different streets, but a street written without a type matches either;
* a house is its number plus a normalised suffix: letter («7а», «7 А», «7-а»), fraction
  («12/1»), corpus («к2») and building («с1»).

House specifications (:func:`parse_house_spec`): empty or «все» is the whole street;
items separated by «,» or «;» are ranges «1-15» («с 1 по 15», «1–15»), optionally of one
side («2-20 чётные», «нечётные 1-15», «чёт.»), a whole side alone («нечётные»), or single
houses («7», «7а», «12/1», «5 к2»). A range covers every house whose number is in it,
letters and corpora included («7а» is in «1-15»); a single house «7» covers «7», «7 к2» and
«7 стр 1» but not «7а».
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "Address",
    "House",
    "HouseRange",
    "HouseSpec",
    "HouseSpecError",
    "address_key",
    "normalize_text",
    "parse_address",
    "parse_house",
    "parse_house_spec",
    "settlement_key",
    "street_key",
]

Parity = Literal["even", "odd"]

# Markers by what they mark; each maps a spelling (no dot) to a canonical type.
_SETTLEMENT = {
    "г": "г",
    "гор": "г",
    "город": "г",
    "пос": "п",
    "п": "п",
    "поселок": "п",
    "пгт": "пгт",
    "рп": "рп",
    "с": "с",
    "село": "с",
    "дер": "д",
    "деревня": "д",
    "ст-ца": "ст-ца",
    "станица": "ст-ца",
    "х": "х",
    "хутор": "х",
    "снт": "снт",
}
_STREET = {
    "ул": "ул",
    "улица": "ул",
    "пр-т": "пр-т",
    "пр-кт": "пр-т",
    "просп": "пр-т",
    "проспект": "пр-т",
    "пр": "пр-т",
    "пер": "пер",
    "переулок": "пер",
    "ш": "ш",
    "шоссе": "ш",
    "б-р": "б-р",
    "бул": "б-р",
    "бульв": "б-р",
    "бульвар": "б-р",
    "пл": "пл",
    "площадь": "пл",
    "наб": "наб",
    "набережная": "наб",
    "пр-д": "пр-д",
    "проезд": "пр-д",
    "туп": "туп",
    "тупик": "туп",
    "ал": "ал",
    "аллея": "ал",
    "мкр": "мкр",
    "мкрн": "мкр",
    "микрорайон": "мкр",
    "линия": "линия",
    "тракт": "тракт",
    "кв-л": "кв-л",
    "квартал": "кв-л",
}
_HOUSE = {"д": "д", "дом": "д", "вл": "д", "влд": "д", "владение": "д"}
_CORPUS = {"к": "к", "корп": "к", "корпус": "к"}
_BUILDING = {"стр": "с", "строение": "с"}
_FLAT = {"кв": "кв", "квартира": "кв", "оф": "кв", "офис": "кв", "пом": "кв", "комн": "кв"}
_REGION = {
    "обл": "обл",
    "область": "обл",
    "край": "край",
    "респ": "респ",
    "республика": "респ",
    "ао": "ао",
    "р-н": "р-н",
    "район": "р-н",
    "округ": "ао",
}
_NAME_NOISE = frozenset({"им", "имени"})
_ORDINAL = re.compile(r"^(\d+)-?(?:я|й|ая|ый|ой|ий|е|го)$")
_HOUSE_TOKEN = re.compile(r"^\d+")
_HOUSE_FORM = re.compile(
    r"^(?P<number>\d+)\s*(?P<letter>[а-я](?![а-я]))?\s*(?:/\s*(?P<fraction>\d+[а-я]?))?"
    r"(?:\s*(?:к|корп|корпус)\s*(?P<corpus>\d+[а-я]?))?"
    r"(?:\s*(?:с|стр|строение)\s*(?P<building>\d+[а-я]?))?$"
)
_PARITY_WORDS: dict[str, Parity] = {
    "четные": "even",
    "четная": "even",
    "четн": "even",
    "чет": "even",
    "нечетные": "odd",
    "нечетная": "odd",
    "нечетн": "odd",
    "нечет": "odd",
}
_WHOLE_STREET = frozenset({"", "все", "весь", "вся", "вся улица", "все дома"})


def normalize_text(text: str) -> str:
    """Lower-case, «ё» → «е», dashes unified, quotes and «№» removed, spaces collapsed."""
    out = text.lower().replace("ё", "е")
    out = re.sub(r"[‐‑‒–—―]", "-", out)
    out = re.sub(r"[«»\"'“”„`№]", " ", out)
    return re.sub(r"\s+", " ", out).strip()


@dataclass(frozen=True, order=True)
class House:
    """A house number: «7» is ``House(7)``, «12/1 к2» is ``House(12, "/1к2")``."""

    number: int
    suffix: str = ""

    @property
    def base(self) -> str:
        """The house without corpus and building: «7а» of «7а к2»."""
        return str(self.number) + re.sub(r"[кс]\d+[а-я]?", "", self.suffix)

    def __str__(self) -> str:
        return f"{self.number}{self.suffix}"


def parse_house(text: str) -> House | None:
    """A house from «7», «7а», «7 А», «7-а», «12/1», «5 к2», «5 корп. 2 стр. 1» (None if not)."""
    compact = normalize_text(text).replace(".", " ")
    compact = re.sub(r"(?<=\d)-(?=[а-я]\b)", "", compact)
    compact = re.sub(r"\s+", " ", compact).strip()
    match = _HOUSE_FORM.match(compact)
    if match is None:
        return None
    suffix = match["letter"] or ""
    if match["fraction"]:
        suffix += "/" + match["fraction"]
    if match["corpus"]:
        suffix += "к" + match["corpus"]
    if match["building"]:
        suffix += "с" + match["building"]
    return House(int(match["number"]), suffix)


@dataclass(frozen=True)
class Address:
    """What an address says, as comparable keys ("" when it does not say)."""

    settlement: str = ""
    street: str = ""
    street_type: str = ""
    house: House | None = None

    @property
    def known(self) -> bool:
        """True when a settlement or a street was found."""
        return bool(self.settlement or self.street)


def _words(text: str) -> list[str]:
    spaced = re.sub(r"\.", ". ", text)
    return [w for w in spaced.replace(".", " ").split() if w]


def _name_key(words: list[str], *, sort: bool) -> str:
    out: list[str] = []
    for word in words:
        word = word.strip("-")
        if not word or word in _NAME_NOISE:
            continue
        ordinal = _ORDINAL.match(word)
        out.append(ordinal[1] if ordinal else word)
    return " ".join(sorted(out) if sort else out)


def street_key(text: str) -> tuple[str, str]:
    """``(street type, street key)`` of «ул. Ленина», «Ленина улица», «Ленина»."""
    words = _words(normalize_text(text))
    kind = ""
    if words and words[0] in _STREET:
        kind = _STREET[words.pop(0)]
    elif words and words[-1] in _STREET:
        kind = _STREET[words.pop()]
    return kind, _name_key(words, sort=True)


def settlement_key(text: str) -> str:
    """The key of «г. Москва», «город Москва», «Москва», «пос. Южный»."""
    words = _words(normalize_text(text))
    if words and (words[0] in _SETTLEMENT or words[0] == "д"):
        words.pop(0)
    elif words and words[-1] in _SETTLEMENT:
        words.pop()
    return _name_key(words, sort=False)


@dataclass
class _Part:
    kind: str | None
    marker: str
    words: list[str] = field(default_factory=list)


def _marker_kind(word: str, following: str | None) -> tuple[str, str] | None:
    """What ``word`` marks, looking at the word after it for the ambiguous «д», «с», «п»."""
    digit_next = following is not None and following[:1].isdigit()
    if word == "д":
        return ("house", "д") if digit_next or following is None else ("settlement", "д")
    if word == "с" and digit_next:
        return ("building", "с")
    if word in _HOUSE:
        return "house", _HOUSE[word]
    if word in _FLAT:
        return "flat", _FLAT[word]
    if word in _CORPUS:
        return "corpus", "к"
    if word in _BUILDING:
        return "building", "с"
    if word in _STREET:
        return "street", _STREET[word]
    if word in _SETTLEMENT:
        return "settlement", _SETTLEMENT[word]
    if word in _REGION:
        return "region", _REGION[word]
    return None


def _parts(text: str) -> list[_Part]:
    parts: list[_Part] = []
    for chunk in normalize_text(text).split(","):
        words = _words(chunk.replace(";", " "))
        if parts == [] and words and re.fullmatch(r"\d{6}", words[0]):
            words.pop(0)  # postal code
        current: _Part | None = None
        for index, word in enumerate(words):
            following = words[index + 1] if index + 1 < len(words) else None
            marked = _marker_kind(word, following)
            if marked is None:
                if current is None:
                    current = _Part(None, "")
                    parts.append(current)
                current.words.append(word)
                continue
            kind, marker = marked
            trailing = following is None or kind == "region"
            if trailing and current is not None and current.kind is None and current.words:
                current.kind, current.marker = kind, marker  # «Ленина ул.», «Тверская обл.»
                continue
            current = _Part(kind, marker)
            parts.append(current)
    return [p for p in parts if p.words or p.kind in ("house", "corpus", "building")]


def parse_address(text: str) -> Address:
    """The settlement, street and house of a free-text Russian address (see the module)."""
    parts = _parts(text)
    settlement = street = street_type = ""
    house_words: list[str] = []
    street_index = next((i for i, p in enumerate(parts) if p.kind == "street"), None)
    for index, part in enumerate(parts):
        if part.kind == "settlement" and not settlement:
            settlement = _name_key(part.words, sort=False)
        elif part.kind == "street" and not street:
            street_type, street = part.marker, _name_key(part.words, sort=True)
        elif part.kind == "house" and not house_words:
            house_words = list(part.words)
        elif part.kind in ("corpus", "building") and house_words:
            house_words += [part.marker, *part.words]
        elif part.kind is None:
            words = part.words
            numeric = bool(_HOUSE_TOKEN.match(words[0]))
            if numeric and (street or settlement) and not house_words:
                house_words = list(words)
            elif not street and street_index is not None and index < street_index:
                settlement = settlement or _name_key(words, sort=False)
            elif not street and not numeric:
                split = next(
                    (i for i, w in enumerate(words) if i > 0 and _HOUSE_TOKEN.match(w)), None
                )
                name = words if split is None else words[:split]
                street = _name_key(name, sort=True)
                if split is not None and not house_words:
                    house_words = words[split:]
    house = parse_house(" ".join(house_words)) if house_words else None
    return Address(settlement, street, street_type, house)


def address_key(text: str) -> str:
    """One string for one building (the flat ignored); when no street and house number can be
    read, the normalised text itself (so unreadable addresses group only with their twins)."""
    parsed = parse_address(text)
    if parsed.house is None or not (parsed.street or parsed.settlement):
        return re.sub(r"[\s.,;]+", " ", normalize_text(text)).strip()[:300]
    return f"{parsed.settlement}|{parsed.street_type}|{parsed.street}|{parsed.house}"[:300]


class HouseSpecError(ValueError):
    """A house specification that cannot be read; the message is a Russian reason."""


@dataclass(frozen=True)
class HouseRange:
    """Houses ``low``..``high`` (inclusive), optionally of one side of the street."""

    low: int
    high: int
    parity: Parity | None = None

    def covers(self, house: House) -> bool:
        """True when ``house``'s number is in the range (and on its side)."""
        if not self.low <= house.number <= self.high:
            return False
        if self.parity == "even":
            return house.number % 2 == 0
        if self.parity == "odd":
            return house.number % 2 == 1
        return True


@dataclass(frozen=True)
class HouseSpec:
    """Which houses of a street: all (no items), or ranges and single houses."""

    ranges: tuple[HouseRange, ...] = ()
    houses: tuple[House, ...] = ()

    @property
    def whole_street(self) -> bool:
        """True when the specification names no house: every house of the street."""
        return not self.ranges and not self.houses

    def covers(self, house: House | None) -> bool:
        """True when ``house`` is one of the specified houses (an unknown house is not)."""
        if self.whole_street:
            return True
        if house is None:
            return False
        if any(r.covers(house) for r in self.ranges):
            return True
        for single in self.houses:
            if str(single) == str(house):
                return True
            if single.base == str(single) and single.base == house.base:
                return True  # «7» covers «7 к2» and «7 стр 1»
        return False


_RANGE = re.compile(r"^(?:с\s*)?(\d+)\s*(?:-|по|до)\s*(\d+)$")
_MAX_HOUSE = 100_000


def _parity_of(words: list[str]) -> tuple[Parity | None, list[str]]:
    parity: Parity | None = None
    rest: list[str] = []
    for word in words:
        key = word.strip(".")
        if key in _PARITY_WORDS:
            parity = _PARITY_WORDS[key]
        elif key not in ("сторона", "дома", "д", "дом", "номера", "только"):
            rest.append(word)
    return parity, rest


def parse_house_spec(text: str) -> HouseSpec:
    """Read a house specification (see the module); raise :class:`HouseSpecError`."""
    compact = normalize_text(text)
    if compact.strip(". ") in _WHOLE_STREET:
        return HouseSpec()
    ranges: list[HouseRange] = []
    houses: list[House] = []
    for raw in re.split(r"[;,]", compact):
        item = raw.strip(" .")
        if not item:
            continue
        parity, words = _parity_of(item.replace(".", ". ").split())
        body = " ".join(words).replace(" - ", "-").strip(" .")
        body = re.sub(r"\s*-\s*", "-", body)
        if not body:
            if parity is None:
                raise HouseSpecError(f"не понятно, какие дома: «{raw.strip()}»")
            ranges.append(HouseRange(1, _MAX_HOUSE, parity))
            continue
        span = _RANGE.match(body)
        if span:
            low, high = int(span[1]), int(span[2])
            if low > high:
                raise HouseSpecError(f"начало диапазона больше конца: «{raw.strip()}»")
            ranges.append(HouseRange(low, high, parity))
            continue
        house = parse_house(body)
        if house is None or parity is not None:
            raise HouseSpecError(
                f"номера домов «{raw.strip()}» не распознаны; примеры: 1-15, 2-20 чётные, 7а, 12/1"
            )
        houses.append(house)
    return HouseSpec(tuple(ranges), tuple(houses))
