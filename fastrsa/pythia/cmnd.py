"""Users' own Pythia configurations: reading a .cmnd file, and what fastrsa refuses in one.

A .cmnd file is Pythia's own format: one setting per line ("Key = value"), applied in order with
`Pythia.readString`; lines whose first non-blank character is not a letter or digit (`!`, `#`, ...)
are comments, as Pythia itself treats them, and blank lines are skipped.

Two kinds of checks run before anything is written:
- `check_settings` on the lines as given: keys that fastrsa sets itself (the record switches
  `VariationFrag:*`, the seeds `Random:seed`/`Random:setSeed`) and Pythia main-program subruns are
  refused; other `Main:` keys are ignored (Pythia never reads them; `--events` sets the number of
  events) and reported by `main_key_notes`.
- `check_reweightable` on an initialized Pythia: whatever route set them (a line, a tune, --set), the
  settings under which the stored records do not describe the sample the weights assume are refused.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ParameterError

# Keys fastrsa sets on top of every configuration (lower case, as Pythia compares them).
OWNED_PREFIXES = {"variationfrag:": "fastrsa sets the record switches VariationFrag:z/pT itself (and zHead "
                                    "from --zhead); in-situ variations are not needed",
                  "random:seed": "fastrsa seeds every shard from --seed (the shard's seed is stored in its "
                                 "metadata)",
                  "random:setseed": "fastrsa seeds every shard from --seed (the shard's seed is stored in "
                                    "its metadata)",
                  "main:subrun": "subruns need one Pythia.init per subrun; give each subrun's settings as "
                                 "its own configuration",
                  "main:numberofsubruns": "subruns need one Pythia.init per subrun; give each subrun's "
                                          "settings as its own configuration"}
MAIN_IGNORED = {"main:numberofevents": "--events sets the number of events",
                "main:timesallowerrors": "fastrsa allows 100 + (events so far) failed events per shard"}

# Settings read back from an initialized Pythia: (key, kind, test(value) -> refused?, reason).
REFUSED = (
    ("HadronLevel:all", "flag", lambda v: not v, "no hadronization, so there are no string breaks to record"),
    ("HadronLevel:Hadronize", "flag", lambda v: not v,
     "no hadronization, so there are no string breaks to record"),
    ("Fragmentation:model", "mode", lambda v: v != 0,
     "only the Lund string model (Fragmentation:model = 0) samples z and pT the way fastrsa reweights "
     "(1 is thermal string fragmentation)"),
    ("StringZ:useNonstandardC", "flag", bool,
     "c quarks then use their own (aNonstandardC, bNonstandardC) shape that the weights do not model"),
    ("StringZ:useNonstandardB", "flag", bool,
     "b quarks then use their own (aNonstandardB, bNonstandardB) shape that the weights do not model"),
    ("StringZ:useNonstandardH", "flag", bool,
     "heavier quarks then use their own shape that the weights do not model"),
    ("StringZ:usePetersonC", "flag", bool, "c quarks then fragment with the Peterson function, not the Lund one"),
    ("StringZ:usePetersonB", "flag", bool, "b quarks then fragment with the Peterson function, not the Lund one"),
    ("StringZ:usePetersonH", "flag", bool,
     "heavier quarks then fragment with the Peterson function, not the Lund one"),
    ("Ropewalk:RopeHadronization", "flag", bool,
     "rope hadronization changes the string parameters string by string, so one base point does not "
     "describe the sample"),
    ("ClosePacking:doClosePacking", "flag", bool,
     "close packing changes the string tension (pT width, flavours) string by string, so one base "
     "point does not describe the sample"),
)

# Refused by the value a line gives (Pythia resets these to 0 during init, after using them).
REFUSED_LINES = {
    "stringz:derivelundpars": ("StringZ:deriveLundPars", lambda v: v.strip() not in ("0", "0.0"),
                               "aLund/bLund are derived from avgZLund/rmsZLund at initialization (Pythia then "
                               "resets the switch), so they are not the free parameters the weights vary, and "
                               "Pythia's in-situ weights disagree; give aLund and bLund instead"),
}

# Groups whose changed settings are named when the self-check fails (the likely culprits).
FRAGMENTATION_GROUPS = ("StringZ:", "StringPT:", "StringFlav:", "StringFragmentation:", "Fragmentation:",
                        "FragmentationSystems:", "MiniStringFragmentation:", "HadronLevel:", "Ropewalk:",
                        "ClosePacking:", "HadronVertex:")
# Changed on purpose by fastrsa, or reweighted exactly: never the culprit.
REWEIGHTED = {"stringz:alund", "stringz:blund", "stringpt:sigma", "stringz:rfactc", "stringz:rfactb",
              "stringflav:probstoud", "stringflav:probqqtoq", "stringflav:probsqtoqq", "stringflav:probqq1toqq0"}


def key_of(setting: str) -> str:
    """The setting's key as Pythia compares it (lower case, no blanks): 'StringZ:aLund = 1' -> 'stringz:alund'."""
    text = setting.strip()
    for sep in ("=", " ", "\t"):
        text = text.split(sep, 1)[0] if sep in text else text
    return text.strip().lower()


def is_comment(line: str) -> bool:
    s = line.strip()
    return not s or not s[0].isalnum()


def read_cmnd(path) -> list[tuple[str, str]]:
    """The settings of a .cmnd file in order, as (line, origin 'FILE:N') pairs."""
    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"cmnd = {str(p)!r}: cannot be read ({exc.__class__.__name__}: {exc})") from None
    return [(line.strip(), f"{p}:{n}") for n, line in enumerate(text.splitlines(), 1) if not is_comment(line)]


def value_of(setting: str) -> str:
    text = setting.strip()
    rest = text.split("=", 1)[1] if "=" in text else (text.split(None, 1) + [""])[1]
    return rest.split("!")[0].strip()


def check_settings(settings: list[tuple[str, str]]) -> None:
    """Refuse the lines that fastrsa sets itself or cannot honour (one line, naming the setting)."""
    for line, origin in settings:
        key = key_of(line)
        for prefix, why in OWNED_PREFIXES.items():
            if key.startswith(prefix):
                raise ParameterError(f"{origin}: {line!r} is refused: {why}")
    check_lines_reweightable(settings)


def check_lines_reweightable(settings: list[tuple[str, str]]) -> None:
    """Refuse the lines whose effect Pythia hides after init (see REFUSED_LINES)."""
    for line, origin in settings:
        hit = REFUSED_LINES.get(key_of(line))
        if hit and hit[1](value_of(line)):
            raise ParameterError(f"{origin}: {hit[0]} = {value_of(line)} is refused: {hit[2]}")


def main_key_notes(settings: list[tuple[str, str]]) -> list[str]:
    """One note per `Main:` key: Pythia never reads them and fastrsa ignores them."""
    notes = []
    for line, origin in settings:
        key = key_of(line)
        if key.startswith("main:"):
            why = MAIN_IGNORED.get(key, "Main: keys are for Pythia's example main programs")
            notes.append(f"{origin}: {line!r} is ignored ({why})")
    return notes


def _value(settings, key: str, kind: str):
    return getattr(settings, kind)(key)


def check_reweightable(pythia) -> None:
    """Refuse an initialized Pythia whose settings the weights cannot cover (one line each)."""
    s = pythia.settings
    for key, kind, refused, why in REFUSED:
        v = _value(s, key, kind)
        if refused(v):
            shown = ("on" if v else "off") if kind == "flag" else v
            raise ParameterError(f"{key} = {shown} is refused: {why}")


def changed_fragmentation_settings(pythia, pythia8mc, lines=()) -> list[str]:
    """The suspects when the self-check fails: hadronization settings (other than those fastrsa
    reweights) that the configuration's lines set or whose value differs from a fresh Pythia's (whose
    default tune is applied), as 'Key = value'."""
    s, fresh = pythia.settings, pythia8mc.Pythia("", False).settings
    out = {}
    for line in lines:
        key = key_of(line)
        if key not in REWEIGHTED and any(key.startswith(g.lower()) for g in FRAGMENTATION_GROUPS):
            out[key] = " ".join(line.split("!")[0].split())
    for getter in ("getFlagMap", "getModeMap", "getParmMap", "getWordMap"):
        for group in FRAGMENTATION_GROUPS:
            now, ref = getattr(s, getter)(group), getattr(fresh, getter)(group)
            for key, entry in sorted(now.items()):
                if key in REWEIGHTED or key in out or not key.startswith(group.lower()):
                    continue
                if key in ref and entry.valNow != ref[key].valNow:
                    out[key] = f"{entry.name} = {entry.valNow}"
    return list(out.values())
