"""What feedparser reads from each feed URL, as the fields tests/it/corpus.rs compares.

Reads lines "ID<TAB>URL" on stdin, fetches and parses each URL with feedparser (the reader
the differential test compares tributary with), and writes one JSON object per line:

    {"id": ID, "bozo": 0|1, "version": "rss20", "entries": [ENTRY, ...]}

ENTRY holds the fields as a reader shows them, normalized the way tributary's outputs are:
"title" (tags stripped, entities decoded, white space collapsed), "link", "authors" (names,
else addresses), "date" (Unix seconds of published, else updated, else created; null when
none parsed), "has_text" (content or summary with any text).

Two processes share the work; the order of the output lines is the input's.
"""

import calendar
import html
import json
import re
import sys
from multiprocessing import Pool

import feedparser

TAG = re.compile(r"<[^>]*>")


def plain(text):
    if not text:
        return ""
    text = TAG.sub("", text)
    text = html.unescape(text)
    return " ".join(text.split())


def date_of(entry):
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value:
            return calendar.timegm(value)
    return None


def authors_of(entry):
    names = []
    for a in entry.get("authors") or []:
        name = (a.get("name") or a.get("email") or "").strip()
        if name and name not in names:
            names.append(name)
    if not names and entry.get("author"):
        names.append(entry["author"].strip())
    return names


def has_text(entry):
    for c in entry.get("content") or []:
        if plain(c.get("value")):
            return True
    return bool(plain(entry.get("summary")))


def read(line):
    ident, url = line.rstrip("\n").split("\t", 1)
    try:
        d = feedparser.parse(url)
    except Exception as e:  # feedparser does not raise, but a crash must not stop the run
        return {"id": ident, "bozo": 1, "version": "", "error": repr(e), "entries": []}
    entries = [
        {
            "title": plain(e.get("title")),
            "link": e.get("link") or "",
            "authors": authors_of(e),
            "date": date_of(e),
            "has_text": has_text(e),
        }
        for e in d.entries
    ]
    return {
        "id": ident,
        "bozo": 1 if d.get("bozo") else 0,
        "version": d.get("version") or "",
        "entries": entries,
    }


def main():
    lines = [l for l in sys.stdin if l.strip()]
    with Pool(2) as pool:
        for row in pool.imap(read, lines, chunksize=16):
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
