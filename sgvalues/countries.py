"""Country profiles: the survey axes, their levels and codes, the strata and the persona wording.

The study's design (Tan et al. 2026) is not Singaporean: four demographic **axes** (``sex``,
``age_group``, ``ethnicity``, ``religion``), a compositional split of their single axes and
pairs, and a persona sentence per subgroup. What *is* country-specific is data, kept in one YAML
per country under ``sgvalues/resources/countries/``:

- each axis's ``source`` variable in the WVS-7 file and its ``levels``: level -> the source codes
  that mean it (several codes may form one level; order = the order used in every table);
- ``strata``: the ``train`` and ``ood`` strata, each a list of one or two axes;
- ``persona``: the place ("living in Singapore"), the noun for each sex, the word for each
  religion (adjective and noun, "a Hindu woman") or a clause for the levels that are not a
  denomination ("have no religion").

Singapore (702, the paper's sample) and Malaysia (458) are shipped; ``data.country`` in a params
file or ``sgvalues prepare --country`` picks one by its ``B_COUNTRY`` code. A new country is a
new YAML file: :func:`load_profile` checks it and says what is wrong (file, field, value).

Example
-------
>>> sg = load_profile(702)
>>> sg.name, sg.axis_levels["ethnicity"]
('singapore', ('Chinese', 'Malay', 'Indian'))
>>> my = load_profile("malaysia")
>>> my.code, my.axes["religion"].codes[8], my.ood_strata
(458, 'Christian', ('age_group_x_religion', 'age_group_x_ethnicity', 'ethnicity_x_religion'))
>>> sorted(available_profiles().values())
['malaysia', 'singapore']
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = [
    "AXIS_NAMES",
    "DEFAULT_COUNTRY",
    "Q289_LABELS",
    "ProfileError",
    "Axis",
    "Stratum",
    "PersonaWording",
    "CountryProfile",
    "profiles_dir",
    "available_profiles",
    "load_profile",
    "read_profile",
    "resolve_profile",
    "profile_for_levels",
]

#: the four axes of the design, in id order; a profile gives each its source, levels and codes
AXIS_NAMES: tuple[str, ...] = ("sex", "age_group", "ethnicity", "religion")
#: B_COUNTRY of the default profile (Singapore, the paper's sample)
DEFAULT_COUNTRY = 702
#: Q289 major religious groups, short codebook labels: a code off a profile's religion axis keeps
#: its label here (e.g. "Jew"), so the respondents table still says what it is
Q289_LABELS = {
    0: "None", 1: "Roman Catholic", 2: "Protestant", 3: "Orthodox", 4: "Jew", 5: "Muslim",
    6: "Hindu", 7: "Buddhist", 8: "Other Christian", 9: "Other",
}
# religion may hold other codebook labels (off the axis, e.g. "Jew"); the others may not
_OPEN_AXES = frozenset({"religion"})
_AGE_LEVEL = re.compile(r"^\d+-\d+$|^\d+\+$")
_VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_SPLITS = ("train", "ood")


class ProfileError(ValueError):
    """A country profile is absent or malformed; the message names the file, field and value."""


@dataclass(frozen=True)
class Axis:
    """One axis: its ``name``, ``source`` variable, ``levels`` (in order) and ``codes`` (code -> level)."""

    name: str
    source: str
    levels: tuple[str, ...]
    codes: dict[int, str]

    @property
    def open(self) -> bool:
        """Whether respondents may hold labels off this axis (religion: other codebook groups)."""
        return self.name in _OPEN_AXES


@dataclass(frozen=True)
class Stratum:
    """One stratum: its ``name``, its ``axes`` (in id order), its ``split`` and ``n_levels``.

    ``n_levels`` is the number of possible subgroups (the product of the axes' level counts).
    """

    name: str
    axes: tuple[str, ...]
    split: str
    n_levels: int = 0


@dataclass(frozen=True)
class PersonaWording:
    """The words of the persona sentence (see :func:`sgvalues.prompts.persona_sentence`)."""

    place: str
    sex_noun: dict[str, str]
    religion_word: dict[str, str]
    religion_clause: dict[str, str]
    ethnicity_word: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class CountryProfile:
    """A checked country profile (:func:`load_profile`)."""

    name: str
    code: int
    country: str
    axes: dict[str, Axis]
    strata: tuple[Stratum, ...]
    persona: PersonaWording
    path: str = ""

    @property
    def axis_levels(self) -> dict[str, tuple[str, ...]]:
        """axis -> its levels, in order (what :data:`sgvalues.subgroups.AXES` is for Singapore)."""
        return {a: ax.levels for a, ax in self.axes.items()}

    @property
    def stratum_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.strata)

    @property
    def train_strata(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.strata if s.split == "train")

    @property
    def ood_strata(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.strata if s.split == "ood")

    def stratum(self, name: str) -> Stratum:
        """The :class:`Stratum` called ``name``; a clear error for unknown names."""
        for s in self.strata:
            if s.name == name:
                return s
        raise ValueError(f"unknown stratum {name!r} in the {self.name} profile; expected one of: "
                         f"{', '.join(self.stratum_names)}")


def profiles_dir():
    """The folder of shipped profiles (``sgvalues/resources/countries``)."""
    return resources.files("sgvalues").joinpath("resources/countries")


@lru_cache(maxsize=1)
def _shipped() -> tuple[tuple[int, str, str], ...]:
    import yaml

    out = []
    for entry in sorted(profiles_dir().iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            raw = yaml.safe_load(entry.read_text(encoding="utf-8")) or {}
            out.append((raw.get("code"), entry.name[:-5], str(entry)))
    return tuple(out)


def available_profiles() -> dict[int, str]:
    """Shipped profiles: ``{B_COUNTRY code: name}``.

    >>> available_profiles()[458]
    'malaysia'
    """
    return {code: name for code, name, _ in _shipped()}


def _available_text() -> str:
    return ", ".join(f"{code} ({name})" for code, name in sorted(available_profiles().items()))


@lru_cache(maxsize=16)
def _read_shipped(path: str) -> CountryProfile:
    return read_profile(path)


def load_profile(country: int | str = DEFAULT_COUNTRY) -> CountryProfile:
    """The shipped profile of ``country``: a ``B_COUNTRY`` code (702) or a name ("singapore").

    Raises
    ------
    ProfileError
        No profile for ``country`` (the message lists those available), or the file is malformed.
    """
    key = str(country).strip().lower()
    for code, name, path in _shipped():
        if key in (str(code), name):
            return _read_shipped(path)  # one object per profile: it keys the persona cache
    raise ProfileError(f"no country profile for {country!r}; profiles available: {_available_text()} "
                       f"(add one as a YAML file in {profiles_dir()})")


def resolve_profile(profile: CountryProfile | int | str | None = None) -> CountryProfile:
    """``profile`` itself, the shipped profile it names, or Singapore's for ``None``."""
    if isinstance(profile, CountryProfile):
        return profile
    return load_profile(DEFAULT_COUNTRY if profile is None else profile)


def profile_for_levels(levels) -> CountryProfile:
    """The shipped profile whose axes hold every ``{axis: level}`` given (Singapore's first).

    For tables that carry levels but not their country (a ``subgroups`` table).

    >>> profile_for_levels([{"religion": "Christian"}, {"sex": "Male"}]).name
    'malaysia'
    >>> profile_for_levels([{"religion": "Buddhist"}]).name
    'singapore'
    """
    import json

    pairs = set()
    for lv in levels:
        lv = json.loads(lv) if isinstance(lv, str) else lv
        pairs.update(lv.items())
    codes = [DEFAULT_COUNTRY] + [c for c in sorted(available_profiles()) if c != DEFAULT_COUNTRY]
    for code in codes:
        prof = load_profile(code)
        axes = prof.axis_levels
        if all(a in axes and v in axes[a] for a, v in pairs):
            return prof
    raise ProfileError(f"no shipped profile holds the levels {sorted(pairs)[:6]}; profiles available: "
                       f"{_available_text()}")


def _need(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise ProfileError(f"{where}: {message}")


def _str_map(raw, where: str, keys) -> dict[str, str]:
    _need(isinstance(raw, dict), where, f"expected a mapping level -> words, got {raw!r}")
    out = {str(k): str(v) for k, v in raw.items()}
    unknown = sorted(set(out) - set(keys))
    _need(not unknown, where, f"level(s) {unknown} are not levels of the axis {list(keys)}")
    return out


def read_profile(path: str | Path) -> CountryProfile:
    """Read and check one profile YAML (any path; :func:`load_profile` finds shipped ones).

    Checks: ``name``, ``code`` (int) and ``country``; exactly the four axes
    (:data:`AXIS_NAMES`), each with a ``source`` variable name and ``levels`` mapping each level
    to a non-empty list of integer codes, no code used twice; age levels written ``16-24`` or
    ``65+``; the strata are one or two known axes, none twice, split ``train``/``ood``; every
    sex level has a noun and every religion level a word or a clause; an off-axis religion code
    does not carry the label of a level.
    """
    import yaml

    where = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileError(f"{where}: not valid YAML ({exc})") from None
    _need(isinstance(raw, dict), where, "expected a mapping with name, code, country, axes, strata, persona")
    missing = [k for k in ("name", "code", "country", "axes", "strata", "persona") if k not in raw]
    _need(not missing, where, f"missing field(s) {missing}")
    _need(isinstance(raw["code"], int), f"{where}: code", f"expected the B_COUNTRY number, got {raw['code']!r}")

    axes_raw = raw["axes"]
    _need(isinstance(axes_raw, dict) and set(axes_raw) == set(AXIS_NAMES), f"{where}: axes",
          f"expected exactly the axes {list(AXIS_NAMES)}, got {list(axes_raw) if isinstance(axes_raw, dict) else axes_raw!r}")
    axes: dict[str, Axis] = {}
    for name in AXIS_NAMES:
        spec, at = axes_raw[name], f"{where}: axes.{name}"
        _need(isinstance(spec, dict) and "source" in spec and "levels" in spec, at, "expected source and levels")
        source = str(spec["source"])
        _need(bool(_VARIABLE.match(source)), f"{at}.source", f"{source!r} is not a WVS variable name")
        levels_raw = spec["levels"]
        _need(isinstance(levels_raw, dict) and levels_raw, f"{at}.levels", "expected a mapping level -> [codes]")
        codes: dict[int, str] = {}
        for level, level_codes in levels_raw.items():
            level = str(level)
            _need(isinstance(level_codes, list) and level_codes and all(isinstance(c, int) for c in level_codes),
                  f"{at}.levels.{level}", f"expected a list of integer codes, got {level_codes!r}")
            for c in level_codes:
                _need(c not in codes, f"{at}.levels.{level}", f"code {c} is already level {codes.get(c)!r}")
                codes[c] = level
            if name == "age_group":
                _need(bool(_AGE_LEVEL.match(level)), f"{at}.levels", f"age level {level!r}: write it as 16-24 or 65+")
        axes[name] = Axis(name, source, tuple(str(k) for k in levels_raw), codes)
    if axes["religion"].source == "Q289":
        rel = axes["religion"]
        clash = sorted(lab for c, lab in Q289_LABELS.items() if c not in rel.codes and lab in rel.levels)
        _need(not clash, f"{where}: axes.religion.levels",
              f"level(s) {clash} are codebook labels of codes left off the axis; map those codes to them or rename")

    strata_raw = raw["strata"]
    _need(isinstance(strata_raw, dict) and set(strata_raw) == set(_SPLITS), f"{where}: strata",
          "expected train: [...] and ood: [...]")
    strata, seen = [], set()
    for split in _SPLITS:
        for entry in strata_raw[split] or []:
            at = f"{where}: strata.{split}"
            _need(isinstance(entry, list) and 1 <= len(entry) <= 2 and all(a in axes for a in entry)
                  and len(set(entry)) == len(entry), at,
                  f"{entry!r}: expected one or two distinct axes of {list(AXIS_NAMES)}")
            key = frozenset(entry)
            _need(key not in seen, at, f"{entry!r} is listed twice")
            seen.add(key)
            n = int(np.prod([len(axes[a].levels) for a in entry]))
            strata.append(Stratum("_x_".join(entry), tuple(entry), split, n))
    _need(any(s.split == "train" for s in strata) and any(s.split == "ood" for s in strata),
          f"{where}: strata", "need at least one train and one ood stratum")

    p = raw["persona"]
    _need(isinstance(p, dict) and "place" in p, f"{where}: persona", "expected place, sex_noun, religion_word, religion_clause")
    persona = PersonaWording(
        place=str(p["place"]),
        sex_noun=_str_map(p.get("sex_noun", {}), f"{where}: persona.sex_noun", axes["sex"].levels),
        religion_word=_str_map(p.get("religion_word", {}) or {}, f"{where}: persona.religion_word",
                               axes["religion"].levels),
        religion_clause=_str_map(p.get("religion_clause", {}) or {}, f"{where}: persona.religion_clause",
                                 axes["religion"].levels),
        ethnicity_word=_str_map(p.get("ethnicity_word", {}) or {}, f"{where}: persona.ethnicity_word",
                                axes["ethnicity"].levels),
    )
    no_noun = [lv for lv in axes["sex"].levels if lv not in persona.sex_noun]
    _need(not no_noun, f"{where}: persona.sex_noun", f"no noun for level(s) {no_noun}")
    no_word = [lv for lv in axes["religion"].levels
               if lv not in persona.religion_word and lv not in persona.religion_clause]
    _need(not no_word, f"{where}: persona", f"religion level(s) {no_word} need a religion_word or a religion_clause")
    return CountryProfile(name=str(raw["name"]), code=int(raw["code"]), country=str(raw["country"]), axes=axes,
                          strata=tuple(strata), persona=persona, path=where)
