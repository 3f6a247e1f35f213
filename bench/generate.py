"""Synthetic raw folder in the real source formats, at a scale factor, deterministic by seed.

`python -m bench.generate --scale 0.01 --seed 42 --out /tmp/raw` writes the folders whose raw
asset the pipeline's definitions wire (`--sources wired`, the default; `all` or a list also
work): 360giving/ (CSV + JSON packages), council_spend/ (five header layouts, Windows-1252,
a title block, councils.csv), eu_cordis/ (`;` CSVs, decimal commas), eu_fts/, eu_kohesio/
(TSV), private/, governance/, ocds/ (release packages + JSON Lines, 1-4 releases per ocid)
and bods/ (0.4 record arrays + 0.3 JSON Lines, ownership chains 1-4 deep). Scale 1 means
1,000,000 funding rows across the funding folders + 500,000 OCDS releases + 200,000 BODS
statements. A new source: a writer here and an entry in `SOURCES` (the extension point).

What the data looks like (all INVENTED; the Harbourton cast of data/raw/README.md opens the
organisation pool so every source tells one story):
- one organisation appears under several spellings and id forms (`GB-COH-09012345`,
  `gb-coh-9012345`, a bare company number; `Ltd`/`LIMITED`/upper case/extra spaces);
- ~1% duplicates (a grant re-published in a second file, repeated council lines, identical
  Kohesio rows), council split lines sharing a transaction number, credits, redacted payees;
- ~0.5% bad rows: ~0.4% with bad values that staging quarantines (`TBC` amounts, 31/02 dates,
  unknown currencies, missing ids) and ~0.1% structurally broken (an unquoted delimiter inside
  a name) in about one file in four, which the raw parsers quarantine.

Every file is written row by row (no file is ever built in memory) with its own RNG derived
from (seed, file name), so the same seed gives the same bytes. `bench_manifest.json` at the
top of the output (ignored by every parser: it sits outside the source folders) lists each
file with the records written and how many are structurally bad, so a test can check
`generated = loaded + quarantined`. Cross-file links (governance projects naming CORDIS,
Kohesio and OCDS ids; BODS chains ending at the companies that receive money) come from one
shared organisation pool, generated in a fixed order. `extra/360giving/bench-extra-grants.csv` is the small new
file the benchmark drops in for its one-new-file run; `extra-new-orgs/360giving/
bench-extra-new-organisations.csv` is the same kind of file where one recipient in twenty is an
organisation no file has published before (its one-new-file run with new organisations);
`extra-ocds/ocds/bench-extra-releases.jsonl` holds 5,000 OCDS releases of new contracting
processes (its one-new-OCDS-file run); `extra-near-names/360giving/bench-extra-near-names.csv`
is a 360Giving file where one recipient in twenty is a known organisation's name with a typo
and no identifier (its run with names close to known ones: matching takes every decision
again).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

GENERATOR_VERSION = "8"
FUNDING_ROWS_AT_SCALE_1 = 1_000_000
OCDS_RELEASES_AT_SCALE_1 = 500_000
BODS_STATEMENTS_AT_SCALE_1 = 200_000
MANIFEST_NAME = "bench_manifest.json"
COUNCILS_FILE = "councils.csv"  # council_spend's payer mapping, not a spend file
EXTRA_DIR = "extra"
EXTRA_FILE = "360giving/bench-extra-grants.csv"
EXTRA_ROWS = 1_000
EXTRA_NEW_ORGS_DIR = "extra-new-orgs"
EXTRA_NEW_ORGS_FILE = "360giving/bench-extra-new-organisations.csv"
NEW_ORG_EVERY = 20  # in that file: 50 recipients of 1,000 are new organisations
EXTRA_NEAR_NAMES_DIR = "extra-near-names"
EXTRA_NEAR_NAMES_FILE = "360giving/bench-extra-near-names.csv"
NEAR_NAME_EVERY = 20  # in that file: 50 recipients are known organisations' names with a typo
EXTRA_OCDS_DIR = "extra-ocds"
EXTRA_OCDS_FILE = "ocds/bench-extra-releases.jsonl"
EXTRA_OCDS_RELEASES = 5_000  # a day of a national publisher: 1% of the releases at scale 1
# the benchmark's runs with a new file: the folder the file is written under (not linked into
# raw until that run) and the manifest key that lists it
EXTRA_RUNS = {
    "one_file": (EXTRA_DIR, "extra"),
    "one_file_new_orgs": (EXTRA_NEW_ORGS_DIR, "extra_new_orgs"),
    "one_file_ocds": (EXTRA_OCDS_DIR, "extra_ocds"),
    "one_file_near_names": (EXTRA_NEAR_NAMES_DIR, "extra_near_names"),
}
BAD_VALUE_RATE = 0.004
BAD_STRUCTURE_RATE = 0.004  # inside the one-in-four files that have broken rows: ~0.1% overall
DIRTY_FILE_EVERY = 4  # one file in four has broken rows; its middle record always is one
DUPLICATE_RATE = 0.005

# share of the funding rows per source (sums to 1)
FUNDING_SHARES = {
    "360giving_csv": 0.20,
    "360giving_json": 0.10,
    "council_spend": 0.38,
    "eu_cordis_projects": 0.02,
    "eu_cordis_organisations": 0.10,
    "eu_fts": 0.05,
    "eu_kohesio": 0.12,
    "private": 0.03,
}
ROWS_PER_FILE = {
    "360giving_csv": 25_000,
    "360giving_json": 25_000,
    "council_spend": 5_000,
    "eu_fts": 50_000,
    "eu_kohesio": 40_000,
    "private": 10_000,
    "ocds_package": 20_000,
    "ocds_jsonl": 25_000,
    "bods_array": 20_000,
    "bods_jsonl": 20_000,
}


# ---------------------------------------------------------------------------------- helpers


def file_rng(seed: int, name: str) -> random.Random:
    """An RNG per (seed, file): files do not depend on the order they are written in."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def split_rows(total: int, per_file: int, min_files: int = 2) -> list[int]:
    """`total` rows over ceil(total / per_file) files (at least `min_files` when total allows)."""
    if total <= 0:
        return []
    n = max(min(min_files, total), math.ceil(total / per_file))
    base, extra = divmod(total, n)
    return [base + (1 if i < extra else 0) for i in range(n)]


@dataclass
class FileEntry:
    path: str  # relative to the output folder
    source: str
    format: str
    rows: int = 0  # records written (data rows / JSON items), bad ones included
    bad_structure: int = 0  # records the raw parser must quarantine
    bad_value: int = 0  # records staging should quarantine (bad amount, date, currency, id)
    duplicates: int = 0  # records repeating an id already written
    bytes: int = 0
    encoding: str = "utf-8"


@dataclass
class Manifest:
    scale: float
    seed: int
    generator_version: str
    sources: list[str]
    files: list[FileEntry] = field(default_factory=list)
    extra: list[FileEntry] = field(default_factory=list)
    extra_new_orgs: list[FileEntry] = field(default_factory=list)
    extra_ocds: list[FileEntry] = field(default_factory=list)
    extra_near_names: list[FileEntry] = field(default_factory=list)
    seconds: float = 0.0

    def rows_by_source(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.files:
            out[f.source] = out.get(f.source, 0) + f.rows
        return dict(sorted(out.items()))

    def to_json(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "seed": self.seed,
            "generator_version": self.generator_version,
            "sources": self.sources,
            "rows_by_source": self.rows_by_source(),
            "total_rows": sum(f.rows for f in self.files),
            "total_bytes": sum(f.bytes for f in self.files),
            "seconds": round(self.seconds, 2),
            "files": [asdict(f) for f in self.files],
            "extra": [asdict(f) for f in self.extra],
            "extra_new_orgs": [asdict(f) for f in self.extra_new_orgs],
            "extra_ocds": [asdict(f) for f in self.extra_ocds],
            "extra_near_names": [asdict(f) for f in self.extra_near_names],
        }


def load_manifest(raw_dir: Path) -> dict[str, Any]:
    return json.loads((raw_dir / MANIFEST_NAME).read_text(encoding="utf-8"))


class CsvOut:
    """A streaming CSV writer that can also emit a deliberately broken (unquoted) line."""

    def __init__(
        self, path: Path, delimiter: str = ",", encoding: str = "utf-8", bom: bool = False
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.delimiter = path, delimiter
        self.fh = path.open("w", encoding=encoding, newline="", errors="strict")
        if bom:
            self.fh.write("\ufeff")
        self.writer = csv.writer(self.fh, delimiter=delimiter, lineterminator="\r\n")

    def row(self, values: Sequence[str]) -> None:
        self.writer.writerow(values)

    def raw_line(self, values: Sequence[str]) -> None:
        """Values joined without quoting: a delimiter inside one shifts the row."""
        self.fh.write(self.delimiter.join(v.replace("\n", " ").replace('"', "") for v in values))
        self.fh.write("\r\n")

    def close(self) -> int:
        self.fh.close()
        return self.path.stat().st_size


def money(rng: random.Random, low: float, high: float) -> int:
    """An amount in pence/cents, log-uniform between low and high units."""
    return int(math.exp(rng.uniform(math.log(low), math.log(high))) * 100)


def fmt_plain(cents: int) -> str:
    return f"{cents // 100}" if cents % 100 == 0 else f"{cents / 100:.2f}"


def fmt_thousands(cents: int, sign: str = "") -> str:
    neg = cents < 0
    text = f"{sign}{abs(cents) / 100:,.2f}"
    return f"-{text}" if neg else text


def fmt_decimal_comma(cents: int) -> str:
    return f"{cents / 100:.2f}".replace(".", ",")


def fmt_scientific(cents: int) -> str:
    return f"{cents / 100:.4E}".replace("E+0", "E+")


def random_date(
    rng: random.Random, start_year: int = 2015, end_year: int = 2025
) -> tuple[int, int, int]:
    y = rng.randint(start_year, end_year)
    m = rng.randint(1, 12)
    d = rng.randint(1, 28)
    return y, m, d


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def fmt_date(ymd: tuple[int, int, int], style: str) -> str:
    y, m, d = ymd
    if style == "iso":
        return f"{y:04d}-{m:02d}-{d:02d}"
    if style == "uk":
        return f"{d:02d}/{m:02d}/{y:04d}"
    if style == "mon":
        return f"{d:02d}-{MONTHS[m - 1]}-{y % 100:02d}"
    if style == "isotime":
        return f"{y:04d}-{m:02d}-{d:02d}T00:00:00+00:00"
    raise ValueError(style)


# ----------------------------------------------------------------------- organisations


_WORDS_A = (
    "Harbour", "Tidewater", "Saltmarsh", "Lantern", "Quayside", "Estuary", "Ferry", "Dockside",
    "Northquay", "Portside", "Lumenwave", "Greenshore", "Beacon", "Anchor", "Mariner", "Cobble",
    "Seagate", "Wharf", "Tideway", "Brightwater", "Riverside", "Oakmoor", "Ashgrove", "Fernhill",
    "Kingsmead", "Millbrook", "Elmstead", "Westcliff", "Eastbank", "Southmere", "Highcross",
    "Larkfield", "Thornbury", "Willowby", "Foxley", "Hollins", "Redcliffe", "Stonebridge",
    "Claymore", "Meadowvale", "Silverlea", "Copperfield", "Ironside", "Blackwater", "Whitehaven",
    "Goldcrest", "Bluebell", "Heronsgate", "Kestrel", "Falconer", "Otterburn", "Badgerwood",
    "Wrenfield", "Linnet", "Sandpiper", "Curlew", "Plover", "Gannet", "Puffin", "Cormorant",
)  # fmt: skip
_WORDS_B = (
    "Digital", "Mobility", "Energy", "Data", "Lighting", "Housing", "Transport", "Health",
    "Learning", "Arts", "Heritage", "Sports", "Youth", "Climate", "Water", "Telecom", "Robotics",
    "Sensors", "Analytics", "Logistics", "Construction", "Engineering", "Catering", "Cleaning",
    "Security", "Software", "Consulting", "Print", "Recycling", "Solar", "Marine", "Civic",
    "Community", "Garden", "Food", "Music", "Theatre", "Care", "Advice", "Training",
)  # fmt: skip
_COMPANY_SUFFIX = (
    "Ltd",
    "Ltd",
    "Ltd",
    "Limited",
    "Services Ltd",
    "Solutions Ltd",
    "Group plc",
    "LLP",
)
_CHARITY_SUFFIX = ("Trust", "Foundation", "Association", "Society", "Project", "Network", "CIO")
_UNIVERSITY = ("University of", "College of")

# The Harbourton cast (data/raw/README.md): the first organisations of every pool.
CAST = (
    ("Harbourton Smart City Ltd", "company", "09990001", None),
    ("Tidewater Digital Ltd", "company", "09990002", None),
    ("Lumenwave Systems Ltd", "company", "09990003", None),
    ("Northquay Telecom Ltd", "company", "09990005", None),
    ("Portside Mobility Ltd", "company", "09990006", None),
    ("Harbour Bank plc", "company", "09990007", None),
    ("Saltmarsh Youth Trust", "charity", None, "1199002"),
    ("Harbourton Maritime Heritage Society", "charity", None, "1199005"),
    ("Greenshore Climate Action", "charity", None, "1199008"),
)


@dataclass(frozen=True)
class Org:
    name: str
    kind: str  # company | charity | university
    company_number: str | None
    charity_number: str | None
    country: str = "GB"

    @property
    def org_id(self) -> str:
        if self.company_number:
            return f"GB-COH-{self.company_number}"
        if self.charity_number:
            return f"GB-CHC-{self.charity_number}"
        return f"GB-EDU-{abs(hash_int(self.name)) % 900000 + 100000}"


def hash_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:6], "big")


@dataclass(frozen=True)
class Funder:
    org_id: str
    name: str
    code: str  # short code used in grant ids


@dataclass(frozen=True)
class Council:
    org_id: str
    name: str
    short: str
    slug: str


class World:
    """The organisations, funders and councils every source draws from."""

    def __init__(self, scale: float, seed: int):
        rng = file_rng(seed, "world")
        n_orgs = max(300, int(60_000 * scale))
        names: set[str] = set()
        orgs: list[Org] = []
        for name, kind, company, charity in CAST:
            names.add(name)
            orgs.append(Org(name, kind, company, charity))
        i = 0
        while len(orgs) < n_orgs:
            i += 1
            roll = rng.random()
            a, b = rng.choice(_WORDS_A), rng.choice(_WORDS_B)
            if roll < 0.70:
                kind, name = "company", f"{a} {b} {rng.choice(_COMPANY_SUFFIX)}"
            elif roll < 0.97:
                kind, name = "charity", f"{a} {b} {rng.choice(_CHARITY_SUFFIX)}"
            else:
                kind, name = "university", f"{rng.choice(_UNIVERSITY)} {a}"
            if name in names:
                name = (
                    f"{name.split(' ')[0]} {rng.choice(_WORDS_A)} {' '.join(name.split(' ')[1:])}"
                )
                if name in names:
                    continue
            names.add(name)
            if kind == "company":
                # invented numbers: 09 + 6 digits (the cast uses 0999xxxx); some Scottish SC
                number = f"09{i:06d}" if rng.random() > 0.05 else f"SC{i:06d}"
                orgs.append(Org(name, kind, number, None))
            elif kind == "charity":
                orgs.append(Org(name, kind, None, f"11{i:05d}"))
            else:
                orgs.append(Org(name, kind, None, None))
        self.orgs = orgs
        self._bods_order = [o for o in orgs if o.company_number]
        self._bods_next = 0
        self._holdings = 0
        n_councils = max(4, int(120 * scale) + 3)
        self.councils = [Council("GB-LAE-HBT", "Harbourton City Council", "HCC", "harbourton")]
        for k in range(1, n_councils):
            place = f"{_WORDS_A[k % len(_WORDS_A)]}{'' if k < len(_WORDS_A) else k}"
            code = f"Z{k:03d}"
            kind = ("City Council", "District Council", "Borough Council", "County Council")[k % 4]
            self.councils.append(
                Council(
                    f"GB-LAE-{code}", f"{place} {kind}", f"{place[:3].upper()}{k}", place.lower()
                )
            )
        self.funders = [
            Funder("GB-LAE-HBT", "Harbourton City Council", "HBT"),
            Funder("GB-CHC-1199001", "Harbourton Community Foundation", "HCF"),
            Funder("GB-GOR-EA9999", "Ministry for Urban Renewal", "MUR"),
        ]
        for k in range(max(8, int(300 * scale))):
            a = _WORDS_A[k % len(_WORDS_A)]
            b = _WORDS_B[(k * 7) % len(_WORDS_B)]
            roll = k % 5
            if roll == 0:
                self.funders.append(
                    Funder(f"GB-GOR-ZZ{k:04d}", f"Department for {b} ({a})", f"G{k}")
                )
            elif roll == 1:
                c = self.councils[k % len(self.councils)]
                self.funders.append(Funder(c.org_id, c.name, f"L{k}"))
            else:
                self.funders.append(Funder(f"GB-CHC-12{k:05d}", f"{a} {b} Foundation", f"F{k}"))

    def next_holding_number(self) -> str:
        """A company number no other organisation has (08 + 6 digits; the pool uses 09/SC)."""
        self._holdings += 1
        return f"08{self._holdings:06d}"

    def next_bods_subject(self) -> tuple[Org, bool]:
        """The next company to declare its owners (BODS), and whether it declared before."""
        org = self._bods_order[self._bods_next % len(self._bods_order)]
        self._bods_next += 1
        return org, self._bods_next > len(self._bods_order)

    def org(self, rng: random.Random) -> Org:
        # a few organisations get most of the money (Zipf-like)
        n = len(self.orgs)
        return self.orgs[min(n - 1, int(n * rng.random() ** 2.5))]


def name_variant(org: Org, rng: random.Random) -> str:
    """The name as one publisher writes it: mostly as registered, sometimes not."""
    r = rng.random()
    name = org.name
    if r < 0.80:
        return name
    if r < 0.88:
        return name.upper()
    if r < 0.93:
        return name.replace(" Ltd", " Limited") if " Ltd" in name else f"The {name}"
    if r < 0.97:
        return name + " "
    return name.replace(" ", "  ", 1)


def id_variant(org: Org, rng: random.Random) -> str:
    """The org-id as one publisher writes it (case, unpadded company number...)."""
    oid = org.org_id
    r = rng.random()
    if r < 0.85 or not org.company_number or not org.company_number.isdigit():
        return oid
    if r < 0.93:
        return f"gb-coh-{int(org.company_number)}"
    return f"GB-COH-{int(org.company_number)}"


def company_number_variant(org: Org, rng: random.Random) -> str:
    if not org.company_number:
        return ""
    if org.company_number.isdigit() and rng.random() < 0.3:
        return str(int(org.company_number))  # leading zero dropped by a spreadsheet
    return org.company_number


# ---------------------------------------------------------------------------- 360Giving

GRANT_TITLES_CSV = (
    "Identifier", "Title", "Description", "Currency", "Amount Awarded", "Award Date",
    "Recipient Org:Identifier", "Recipient Org:Name", "Recipient Org:Charity Number",
    "Recipient Org:Company Number", "Funding Org:Identifier", "Funding Org:Name",
    "Grant Programme:Code", "Grant Programme:Title", "Beneficiary Location:Name",
    "Beneficiary Location:Country Code", "Last modified", "Data Source",
)  # fmt: skip
_PURPOSES = (
    "core funding", "a community hub refit", "summer activities for young people",
    "an open data pilot", "street tree planting", "digital skills sessions",
    "a heritage trail", "an energy advice service", "sensor network maintenance",
    "a food bank van", "e-bike loans", "a coastal clean-up programme",
)  # fmt: skip


@dataclass
class Grant:
    identifier: str
    title: str
    description: str
    currency: str
    amount: str
    award_date: str
    recipient_id: str
    recipient_name: str
    charity_number: str
    company_number: str
    funder: Funder
    programme_code: str
    programme_title: str
    location: str
    country: str
    bad_value: bool


def make_grant(world: World, rng: random.Random, funder: Funder, n: int) -> Grant:
    org = world.org(rng)
    ymd = random_date(rng, 2016, 2025)
    currency = "GBP" if rng.random() < 0.96 else rng.choice(("EUR", "USD"))
    amount = fmt_plain(money(rng, 250, 2_000_000))
    identifier = f"360G-{funder.code}-{n:07d}"
    date = fmt_date(ymd, "iso" if rng.random() < 0.85 else "uk")
    bad = rng.random() < BAD_VALUE_RATE
    if bad:
        which = rng.randrange(4)
        if which == 0:
            amount = "TBC"
        elif which == 1:
            date = f"31/02/{ymd[0]}"
        elif which == 2:
            currency = "POUNDS"
        else:
            identifier = ""
    programme = rng.randrange(1, 6)
    purpose = rng.choice(_PURPOSES)
    return Grant(
        identifier=identifier,
        title=f"Grant for {purpose}",
        description=f"Funding to {org.name} for {purpose} in {rng.choice(_WORDS_A)}.",
        currency=currency,
        amount=amount,
        award_date=date,
        recipient_id=id_variant(org, rng),
        recipient_name=name_variant(org, rng),
        charity_number=org.charity_number or "",
        company_number=company_number_variant(org, rng),
        funder=funder,
        programme_code=f"{funder.code}-P{programme}",
        programme_title=f"{funder.name.split(' (')[0]} programme {programme}",
        location=rng.choice(_WORDS_A),
        country="GB",
        bad_value=bad,
    )


def with_typo(name: str, rng: random.Random) -> str:
    """`name` with two neighbouring letters of its longest word swapped (a typing slip that
    changes its normalised key but keeps it close: token_sort_ratio ~95)."""
    words = name.split(" ")
    i = max(range(len(words)), key=lambda j: (len(words[j]), -j))
    w = words[i]
    if len(w) < 4:
        return name + "s"
    at = rng.randrange(1, len(w) - 2)
    if w[at] == w[at + 1]:
        at = next((j for j in range(1, len(w) - 2) if w[j] != w[j + 1]), at)
    words[i] = w[:at] + w[at + 1] + w[at] + w[at + 2 :]
    return " ".join(words)


def write_360_csv(
    path: Path,
    entry: FileEntry,
    world: World,
    rng: random.Random,
    rows: int,
    dirty: bool,
    start: int,
    new_org_every: int = 0,
    near_name_every: int = 0,
) -> None:
    """`new_org_every` > 0: every such row's recipient is an organisation of its own, named
    by name only, that no other file publishes. `near_name_every` > 0: every such row's
    recipient is a known organisation's name with a typo, by name only (a fuzzy candidate)."""
    out = CsvOut(path, bom=rng.random() < 0.3)
    titles: list[str] = list(GRANT_TITLES_CSV)
    if rng.random() < 0.3:  # the `:0:` index form some publishers export
        titles = [t.replace("Beneficiary Location:", "Beneficiary Location:0:") for t in titles]
    out.row(titles)
    funder = world.funders[start % len(world.funders)]
    written: list[str] = []
    for k in range(rows):
        if written and rng.random() < DUPLICATE_RATE:
            g = make_grant(world, rng, funder, start + k)
            g.identifier = rng.choice(written)
            entry.duplicates += 1
        else:
            g = make_grant(world, rng, funder, start + k)
        if g.identifier and len(written) < 10_000:
            written.append(g.identifier)
        if new_org_every and k % new_org_every == 0:
            g.recipient_name = f"{rng.choice(_WORDS_A)} Newfield Community Trust No {start + k}"
            g.recipient_id = g.charity_number = g.company_number = ""
        elif near_name_every and k % near_name_every == 0:
            g.recipient_name = with_typo(g.recipient_name, rng)
            g.recipient_id = g.charity_number = g.company_number = ""
        values = [
            g.identifier, g.title, g.description, g.currency, g.amount, g.award_date,
            g.recipient_id, g.recipient_name, g.charity_number, g.company_number,
            g.funder.org_id, g.funder.name, g.programme_code, g.programme_title, g.location,
            g.country, "2025-06-30", "https://harbourton.example/360giving",
        ]  # fmt: skip
        entry.bad_value += g.bad_value
        if dirty and (k == rows // 2 or rng.random() < BAD_STRUCTURE_RATE):
            values[7] = values[7].strip() + ", Harbourton branch"  # unquoted comma: 19 fields
            out.raw_line(values)
            entry.bad_structure += 1
        else:
            out.row(values)
        entry.rows += 1
    entry.bytes = out.close()


def write_360_json(
    path: Path,
    entry: FileEntry,
    world: World,
    rng: random.Random,
    rows: int,
    start: int,
    republished: list[str],
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    funder = world.funders[(start * 7 + 3) % len(world.funders)]
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write('{\n  "grants": [\n')
        for k in range(rows):
            g = make_grant(world, rng, funder, start + k)
            if republished and rng.random() < 2 * DUPLICATE_RATE:
                g.identifier = rng.choice(republished)  # a grant also published in a CSV file
                entry.duplicates += 1
            entry.bad_value += g.bad_value
            amount: Any = g.amount
            if amount != "TBC":
                amount = int(amount) if amount.isdigit() else float(amount)
            recipient: dict[str, Any] = {"id": g.recipient_id, "name": g.recipient_name}
            if g.company_number:
                recipient["companyNumber"] = g.company_number
            if g.charity_number:
                recipient["charityNumber"] = g.charity_number
            recipient["addressCountry"] = "United Kingdom"
            grant = {
                "id": g.identifier,
                "title": g.title,
                "description": g.description,
                "currency": g.currency,
                "amountAwarded": amount,
                "awardDate": g.award_date,
                "recipientOrganization": [recipient],
                "fundingOrganization": [{"id": g.funder.org_id, "name": g.funder.name}],
                "grantProgramme": [{"code": g.programme_code, "title": g.programme_title}],
                "beneficiaryLocation": [{"name": g.location, "countryCode": g.country}],
                "dataSource": "https://harbourton.example/360giving",
            }
            if rng.random() < 0.05:  # a second recipient listed: the parser keeps the first
                other = world.org(rng)
                grant["recipientOrganization"].append({"id": other.org_id, "name": other.name})
            fh.write("    " + json.dumps(grant, ensure_ascii=False))
            fh.write(",\n" if k < rows - 1 else "\n")
            entry.rows += 1
        fh.write('  ],\n  "license": "https://creativecommons.org/licenses/by/4.0/"\n}\n')
    entry.bytes = path.stat().st_size


# ------------------------------------------------------------------------- council spend

# (header, how each canonical field is written); None = column absent in that layout
COUNCIL_LAYOUTS: tuple[dict[str, Any], ...] = (
    {
        "name": "over-500",
        "titles": ("Body Name", "Service Area", "Expenditure Catergory", "Expenditure Code",
                   "Date Paid", "Transaction Number", "Net Amount", "VAT", "Capital or Revenue",
                   "Supplier ID", "Supplier Name", "Company Number", "Charity Number"),
        "date": "uk", "amount": "thousands", "encoding": "utf-8", "title_lines": 0,
    },
    {
        "name": "payments",
        "titles": ("Department", "Expense Type", "Payment Date", "Trans No", "Amount £", "Vendor",
                   "Companies House No", "Capital/Revenue"),
        "date": "mon", "amount": "pound", "encoding": "cp1252", "title_lines": 0,
    },
    {
        "name": "transparency",
        "titles": ("Organisation Name", "Directorate", "Expense Category", "Transaction Date",
                   "Transaction ID", "Amount", "Supplier", "Supplier Company Number", "Purpose"),
        "date": "iso", "amount": "plain", "encoding": "utf-8", "title_lines": 0,
    },
    {
        "name": "expenditure",
        "titles": ("Body", "Service Division Label", "Expenses Type", "Payment Date",
                   "Payment Reference", "Value £", "Payee Name", "CRN", "VAT Amount"),
        "date": "uk", "amount": "plain", "encoding": "utf-8", "title_lines": 2,
    },
    {
        "name": "creditors",
        "titles": ("Authority", "Cost Centre", "Account Description", "Posting Date",
                   "Voucher Number", "Gross Amount", "Creditor Name", "Company Reg No"),
        "date": "uk", "amount": "thousands", "encoding": "cp1252", "title_lines": 0,
    },
)  # fmt: skip

_DEPARTMENTS = (
    "Smart City Programme", "Highways and Street Lighting", "Digital Services", "Adult Social Care",
    "Children's Services", "Housing", "Waste and Recycling", "Parks and Leisure", "Planning",
    "Finance", "Libraries", "Public Health",
)  # fmt: skip
_EXPENSES = (
    "Partnership Contribution", "Street Lighting Equipment", "Software Licences",
    "Consultancy", "Grants to Voluntary Organisations", "Building Maintenance",
    "Vehicle Hire", "Catering", "Agency Staff", "Professional Fees", "IT Hardware",
)  # fmt: skip


def _council_amount(cents: int, style: str) -> str:
    if style == "thousands":
        return fmt_thousands(cents)
    if style == "pound":
        return fmt_thousands(cents, "£")
    return f"{cents / 100:.2f}"


def write_council_file(
    path: Path,
    entry: FileEntry,
    world: World,
    rng: random.Random,
    rows: int,
    council: Council,
    layout: dict[str, Any],
    dirty: bool,
) -> None:
    enc = layout["encoding"]
    entry.encoding = enc
    out = CsvOut(path, encoding=enc, bom=enc == "utf-8" and rng.random() < 0.3)
    width = len(layout["titles"])
    for t in range(layout["title_lines"]):  # a title block above the header
        out.row([f"{council.name} - expenditure over £500" if t == 0 else ""])
    out.row(list(layout["titles"]))
    tx = 0
    previous: list[str] | None = None
    forced = False  # the file's guaranteed broken row is written
    k = 0
    while k < rows:
        if previous is not None and rng.random() < DUPLICATE_RATE:
            out.row(previous)  # the same line published twice
            entry.duplicates += 1
            entry.rows += 1
            k += 1
            continue
        org = world.org(rng)
        tx += 1
        lines = 2 if rng.random() < 0.03 else 1  # split lines share a transaction number
        ymd = random_date(rng, 2019, 2025)
        for _ in range(min(lines, rows - k)):
            cents = money(rng, 500, 250_000)
            if rng.random() < 0.01:
                cents = -cents  # credit note
            redacted = rng.random() < 0.02
            supplier = "Redacted personal data" if redacted else name_variant(org, rng)
            number = "" if redacted else company_number_variant(org, rng)
            amount = _council_amount(cents, layout["amount"])
            date = fmt_date(ymd, layout["date"])
            bad = rng.random() < BAD_VALUE_RATE
            if bad:
                if rng.random() < 0.5:
                    amount = "see note"
                else:
                    date = "31/02/2024" if layout["date"] != "mon" else "31-Feb-24"
            entry.bad_value += bad
            fields = {
                "body": council.name if rng.random() < 0.8 else council.short,
                "dept": rng.choice(_DEPARTMENTS),
                "expense": rng.choice(_EXPENSES),
                "code": f"EX{rng.randrange(1000, 9999)}",
                "date": date,
                "tx": f"{council.short}-{ymd[0] % 100:02d}-{tx:06d}",
                "amount": amount,
                "vat": _council_amount(abs(cents) // 5, layout["amount"]),
                "caprev": "Revenue" if rng.random() < 0.8 else "Capital",
                "supplier_id": f"S{hash_int(org.name) % 100000:05d}",
                "supplier": supplier,
                "company": number,
                "charity": org.charity_number or "",
                "purpose": rng.choice(_PURPOSES),
            }
            values = [_council_value(title, fields) for title in layout["titles"]]
            assert len(values) == width
            if dirty and ((not forced and k >= rows // 2) or rng.random() < BAD_STRUCTURE_RATE):
                forced = True
                i = layout["titles"].index(_SUPPLIER_TITLE[layout["name"]])
                values[i] = values[i].strip() + ", Trading As Harbour Services"
                out.raw_line(values)
                entry.bad_structure += 1
            else:
                out.row(values)
                previous = values
            entry.rows += 1
            k += 1
    entry.bytes = out.close()


_SUPPLIER_TITLE = {
    "over-500": "Supplier Name",
    "payments": "Vendor",
    "transparency": "Supplier",
    "expenditure": "Payee Name",
    "creditors": "Creditor Name",
}
_COUNCIL_FIELD_OF_TITLE = {
    "Body Name": "body", "Organisation Name": "body", "Body": "body", "Authority": "body",
    "Service Area": "dept", "Department": "dept", "Directorate": "dept",
    "Service Division Label": "dept", "Cost Centre": "dept",
    "Expenditure Catergory": "expense", "Expense Type": "expense", "Expense Category": "expense",
    "Expenses Type": "expense", "Account Description": "expense",
    "Expenditure Code": "code",
    "Date Paid": "date", "Payment Date": "date", "Transaction Date": "date", "Posting Date": "date",
    "Transaction Number": "tx", "Trans No": "tx", "Transaction ID": "tx",
    "Payment Reference": "tx", "Voucher Number": "tx",
    "Net Amount": "amount", "Amount £": "amount", "Amount": "amount", "Value £": "amount",
    "Gross Amount": "amount",
    "VAT": "vat", "VAT Amount": "vat",
    "Capital or Revenue": "caprev", "Capital/Revenue": "caprev",
    "Supplier ID": "supplier_id",
    "Supplier Name": "supplier", "Vendor": "supplier", "Supplier": "supplier",
    "Payee Name": "supplier", "Creditor Name": "supplier",
    "Company Number": "company", "Companies House No": "company",
    "Supplier Company Number": "company", "CRN": "company", "Company Reg No": "company",
    "Charity Number": "charity",
    "Purpose": "purpose",
}  # fmt: skip


def _council_value(title: str, fields: dict[str, str]) -> str:
    return fields[_COUNCIL_FIELD_OF_TITLE[title]]


def write_councils_csv(path: Path, entry: FileEntry, councils: list[Council]) -> None:
    out = CsvOut(path)
    out.row(["match", "council_org_id", "council_name"])
    n = 0
    for c in councils:
        for match in (c.name, c.short, f"{c.slug}-*.csv"):
            out.row([match, c.org_id, c.name])
            n += 1
    entry.rows = n
    entry.bytes = out.close()


# ---------------------------------------------------------------------------------- CORDIS

CORDIS_PROJECT_TITLES = (
    "id", "acronym", "status", "title", "startDate", "endDate", "totalCost", "ecMaxContribution",
    "legalBasis", "topics", "ecSignatureDate", "frameworkProgramme", "masterCall", "subCall",
    "fundingScheme", "nature", "objective", "contentUpdateDate", "rcn", "grantDoi",
)  # fmt: skip
CORDIS_ORG_TITLES = (
    "projectID", "projectAcronym", "organisationID", "vatNumber", "name", "shortName", "SME",
    "activityType", "street", "postCode", "city", "country", "nutsCode", "geolocation",
    "organizationURL", "contactForm", "contentUpdateDate", "rcn", "order", "role",
    "ecContribution", "netEcContribution", "totalCost", "endOfParticipation", "active",
)  # fmt: skip
_CORDIS_COUNTRIES = ("UK", "DE", "FR", "ES", "IT", "NL", "EL", "PL", "BE", "SE", "PT", "IE")


def cordis_programmes(n_projects: int) -> list[tuple[str, int, int]]:
    """(programme, first project number, projects) per CORDIS export file pair."""
    half = n_projects // 2
    return [("h2020", 800_000, half), ("horizon", 900_000, n_projects - half)]


def write_cordis(
    folder: Path,
    entries: list[FileEntry],
    world: World,
    seed: int,
    n_projects: int,
    n_orgs: int,
) -> list[str]:
    """Project and organisation files per programme; returns the project ids written."""
    ids: list[str] = []
    programmes = cordis_programmes(n_projects)
    orgs_per_project = max(1, n_orgs // max(1, n_projects))
    orgs_left = n_orgs
    for p_index, (prog, first, count) in enumerate(programmes):
        fp = "H2020" if prog == "h2020" else "HORIZON"
        rng = file_rng(seed, f"cordis-{prog}")
        p_entry = FileEntry(f"eu_cordis/{prog}_project.csv", "eu_cordis", "csv")
        o_entry = FileEntry(f"eu_cordis/{prog}_organization.csv", "eu_cordis", "csv")
        pout = CsvOut(folder / f"{prog}_project.csv", delimiter=";", bom=True)
        oout = CsvOut(folder / f"{prog}_organization.csv", delimiter=";", bom=True)
        pout.row(list(CORDIS_PROJECT_TITLES))
        oout.row(list(CORDIS_ORG_TITLES))
        dirty = p_index == 0
        org_budget = orgs_left if p_index == len(programmes) - 1 else orgs_per_project * count
        orgs_left -= org_budget
        for k in range(count):
            pid = str(first + k)
            ids.append(pid)
            acronym = f"{rng.choice(_WORDS_A).upper()[:6]}{k % 100}"
            start = random_date(
                rng, 2015 if fp == "H2020" else 2021, 2020 if fp == "H2020" else 2025
            )
            end = (start[0] + rng.randint(2, 5), start[1], start[2])
            total = money(rng, 200_000, 20_000_000)
            ec = int(total * rng.uniform(0.6, 1.0))
            bad = rng.random() < BAD_VALUE_RATE
            p_entry.bad_value += bad
            pout.row([
                pid, acronym, rng.choice(("SIGNED", "CLOSED", "TERMINATED")),
                f"{acronym}: {rng.choice(_PURPOSES)} at city scale", fmt_date(start, "iso"),
                fmt_date(end, "iso"), fmt_decimal_comma(total),
                "n/a" if bad else fmt_decimal_comma(ec), f"{fp}-EU.3.4.",
                f"{fp}-SCC-{k % 40:02d}", fmt_date(start, "iso"), fp, f"{fp}-CALL-{start[0]}",
                f"{fp}-CALL-{start[0]}", rng.choice(("RIA", "IA", "CSA")), "",
                "INVENTED benchmark project; objective text; with a semicolon inside quotes.",
                "2025-03-14 09:12:00", str(9_000_000 + first // 1000 + k), f"10.9999/{pid}",
            ])  # fmt: skip
            p_entry.rows += 1
            n_here = org_budget // count + (1 if k < org_budget % count else 0)
            for order in range(1, n_here + 1):
                org = world.org(rng)
                role = (
                    "coordinator"
                    if order == 1
                    else rng.choice(("participant", "participant", "thirdParty"))
                )
                contribution = money(rng, 20_000, 3_000_000)
                obad = rng.random() < BAD_VALUE_RATE
                o_entry.bad_value += obad
                vat = ""
                if org.company_number and rng.random() < 0.5:
                    digits = f"{hash_int(org.name) % 10**9:09d}"
                    vat = rng.choice((f"GB{digits}", f"GB {digits[:3]} {digits[3:7]} {digits[7:]}"))
                values = [
                    pid, acronym, f"9{hash_int(org.name) % 10**8:08d}", vat,
                    org.name.upper() if rng.random() < 0.7 else org.name,
                    org.name.split(" ")[0], "true" if org.kind == "company" else "false",
                    {"company": "PRC", "charity": "OTH", "university": "HES"}[org.kind],
                    "Quay Street 1", "HB1 1AA", "Harbourton", rng.choice(_CORDIS_COUNTRIES),
                    "UKZ99", "", "https://harbourton.example/", "", "2025-03-14 09:12:00",
                    str(hash_int(org.name) % 10**9), str(order), "" if obad else role,
                    fmt_decimal_comma(contribution), fmt_decimal_comma(contribution),
                    fmt_decimal_comma(int(contribution * 1.25)), "false", "true",
                ]  # fmt: skip
                forced = k == count // 2 and order == n_here
                if dirty and (forced or rng.random() < BAD_STRUCTURE_RATE):
                    values[4] = values[4] + "; Harbourton Branch"  # unquoted `;` in the name
                    oout.raw_line(values)
                    o_entry.bad_structure += 1
                else:
                    oout.row(values)
                o_entry.rows += 1
        p_entry.bytes, o_entry.bytes = pout.close(), oout.close()
        entries.extend([p_entry, o_entry])
    return ids


# ------------------------------------------------------------------------------------ FTS

FTS_TITLES_2024 = (
    "Year", "Budget", "Reference of the Legal Commitment (LC)", "Reference (Budget)",
    "Name of beneficiary", "VAT number of beneficiary", "Not-for-profit organisation (NFPO)",
    "Non-governmental organisation (NGO)", "Coordinator", "Address", "City", "Postal code",
    "Beneficiary country", "NUTS2", "Geographical Zone", "Action location",
    "Beneficiary\u2019s contracted amount (EUR)", "Beneficiary\u2019s estimated contracted amount (EUR)",
    "Beneficiary\u2019s estimated consumed amount (EUR)", "Commitment contracted amount (EUR) (A)",
    "Additional/Reduced amount (EUR) (B)", "Commitment  total amount (EUR) (A+B)",
    "Commitment consumed amount (EUR)", "Source of (estimated) detailed amount", "Expense type",
    "Subject of grant or contract", "Responsible department", "Budget line number",
    "Budget line name", "Programme name", "Funding type", "Beneficiary Group Code",
    "Beneficiary type", "Project start date", "Project end date", "Type of contract*",
    "Management type", "Benefiting country",
)  # fmt: skip
_FTS_DEPARTMENTS = (
    "European Health and Digital Executive Agency", "Directorate-General for Mobility and Transport",
    "Directorate-General for Regional and Urban Policy", "European Climate, Infrastructure and Environment Executive Agency",
)  # fmt: skip


def write_fts(
    path: Path, entry: FileEntry, world: World, rng: random.Random, rows: int, year: int
) -> None:
    titles: list[str] = list(FTS_TITLES_2024)
    if year < 2024:  # layout drift: registration number instead of VAT number
        titles[5] = "Recipient main registration number"
    out = CsvOut(path)
    out.row(titles)
    lc = 0
    k = 0
    while k < rows:
        lc += 1
        members = min(rows - k, rng.randint(1, 4))
        total = sum(money(rng, 5_000, 2_000_000) for _ in range(members))
        for m in range(members):
            org = world.org(rng)
            amount = total // members
            bad = rng.random() < BAD_VALUE_RATE
            entry.bad_value += bad
            if year < 2024:
                ident = org.company_number or ""
            else:
                ident = f"GB{hash_int(org.name) % 10**9:09d}" if org.company_number else ""
            values = [
                str(year), "EU budget", f"SI2.{year % 100:02d}{lc:06d}", "99.999902",
                org.name.upper(), ident, "No", "No", "Yes" if m == 0 else "No", "-", "Harbourton",
                "", "United Kingdom", "", "Europe", "United Kingdom",
                "n/a" if bad else fmt_thousands(amount), fmt_thousands(amount), "",
                fmt_thousands(total), "0.00", fmt_thousands(total), "", "Grant agreement",
                "Operational", f"{rng.choice(_PURPOSES)} (benchmark)", rng.choice(_FTS_DEPARTMENTS),
                "99 99 99 98", "Invented budget line (benchmark)",
                rng.choice(("Digital Europe Programme", "Connecting Europe Facility", "LIFE")),
                "Grants", "LE99", "Private", f"{year}-09-01", f"{year + 2}-08-31", "Grant",
                "Direct management", "United Kingdom",
            ]  # fmt: skip
            out.row(values)
            entry.rows += 1
            k += 1
    entry.bytes = out.close()


# -------------------------------------------------------------------------------- Kohesio

KOHESIO_TITLES = (
    "Operation_Unique_Identifier", "Operation_Name_English", "Beneficiary", "Beneficiary_Id",
    "Total_Eligible_Expenditure_amount", "Project_EU_Budget", "Cofinancing_Rate", "Fund_Code",
    "Programme_Code", "Programme_Name", "ManagingAuthority", "ManagingAuthority_Id",
    "Operation_Start_Date", "Operation_End_Date", "Country", "Region",
)  # fmt: skip
_AUTHORITIES = (
    ("Ministry for Urban Renewal", "GB-GOR-EA9999"),
    ("Estuary Region Combined Authority", ""),
    ("Harbourton City Council", "GB-LAE-HBT"),
    ("National Cohesion Agency", ""),
)


def write_kohesio(
    path: Path,
    entry: FileEntry,
    world: World,
    rng: random.Random,
    rows: int,
    file_no: int,
    dirty: bool,
) -> list[str]:
    out = CsvOut(path, delimiter="\t")
    out.row(list(KOHESIO_TITLES))
    fund = ("ERDF", "ESF", "CF", "JTF")[file_no % 4]
    period = 2014 if file_no % 2 else 2021
    programme = f"{period}UK16RFPR{file_no:03d}"
    ids: list[str] = []
    previous: list[str] | None = None
    forced = False  # the file's guaranteed broken row is written
    for k in range(rows):
        if previous is not None and rng.random() < DUPLICATE_RATE:
            out.row(previous)  # Kohesio repeats identical rows: kept as published
            entry.duplicates += 1
            entry.rows += 1
            continue
        org = world.org(rng)
        oid = f"HBT-{fund}-{file_no:03d}-{k:07d}"
        ids.append(oid)
        total = money(rng, 10_000, 5_000_000)
        rate = rng.choice((0.5, 0.6, 0.75, 0.85))
        eu = int(total * rate)
        authority, authority_id = _AUTHORITIES[(file_no + k) % len(_AUTHORITIES)]
        start = random_date(rng, period, min(period + 6, 2025))  # no operation starts in the future
        bad = rng.random() < BAD_VALUE_RATE
        entry.bad_value += bad
        values = [
            oid, f"{rng.choice(_PURPOSES).capitalize()} in {rng.choice(_WORDS_A)}",
            name_variant(org, rng), id_variant(org, rng) if rng.random() < 0.6 else "",
            "n/a" if bad else (fmt_scientific(total) if rng.random() < 0.2 else fmt_plain(total)),
            fmt_plain(eu) if rng.random() < 0.9 else "",
            f"{int(rate * 100)}%" if rng.random() < 0.3 else str(rate), fund, programme,
            f"Benchmark {fund} Programme {period}-{period + 6}", authority, authority_id,
            fmt_date(start, "iso" if rng.random() < 0.8 else "uk"),
            fmt_date((start[0] + 2, start[1], start[2]), "iso"), "United Kingdom", "Harbourton",
        ]  # fmt: skip
        if dirty and ((not forced and k >= rows // 2) or rng.random() < BAD_STRUCTURE_RATE):
            forced = True
            values[1] = values[1] + "\tphase 2"  # a tab inside the name: one field too many
            out.raw_line(values)
            entry.bad_structure += 1
        else:
            out.row(values)
            previous = values
        entry.rows += 1
    entry.bytes = out.close()
    return ids


# -------------------------------------------------------------------------------- private

PRIVATE_TITLES = (
    "funder_id", "funder_name", "recipient_id", "recipient_name", "project_id", "instrument",
    "amount", "currency", "date", "source_url",
)  # fmt: skip


def write_private(
    path: Path,
    entry: FileEntry,
    world: World,
    rng: random.Random,
    rows: int,
    dirty: bool,
    projects: list[str],
) -> None:
    out = CsvOut(path)
    out.row(list(PRIVATE_TITLES))
    for k in range(rows):
        funder, recipient = world.org(rng), world.org(rng)
        instrument = rng.choice(("equity", "loan", "sponsorship", "In-kind", "grant"))
        bad = rng.random() < BAD_VALUE_RATE
        entry.bad_value += bad
        values = [
            id_variant(funder, rng), name_variant(funder, rng), id_variant(recipient, rng),
            name_variant(recipient, rng),
            rng.choice(projects) if projects and rng.random() < 0.2 else "",
            "crowdfunding" if bad else instrument,
            fmt_thousands(money(rng, 1_000, 5_000_000)) if rng.random() < 0.5 else fmt_plain(money(rng, 1_000, 5_000_000)),
            "GBP" if rng.random() < 0.9 else "EUR", fmt_date(random_date(rng, 2018, 2025), "iso"),
            "https://harbourton.example/private",
        ]  # fmt: skip
        if dirty and (k == rows // 2 or rng.random() < BAD_STRUCTURE_RATE):
            values[3] = values[3] + ", Harbourton"
            out.raw_line(values)
            entry.bad_structure += 1
        else:
            out.row(values)
        entry.rows += 1
    entry.bytes = out.close()


# ----------------------------------------------------------------------------- governance


def _take(pool: list[str], rng: random.Random, n: int) -> str:
    """n ids from `pool` (removed from it) for 30% of the projects, else empty."""
    if len(pool) < n or rng.random() >= 0.3:
        return ""
    return " | ".join(pool.pop() for _ in range(n))


def write_governance(
    folder: Path,
    entries: list[FileEntry],
    world: World,
    seed: int,
    n_partnerships: int,
    cordis_ids: list[str],
    kohesio_ids: list[str],
    ocids: list[str],
) -> list[str]:
    rng = file_rng(seed, "governance")
    project_ids: list[str] = []
    # each external id links one project (the register names a grant or tender once)
    cordis, operations, processes = (
        rng.sample(ids, len(ids)) for ids in (cordis_ids, kohesio_ids, ocids)
    )
    p_out = CsvOut(folder / "partnerships.csv")
    m_out = CsvOut(folder / "partnership_members.csv", bom=True)
    j_out = CsvOut(folder / "projects.csv")
    a_out = CsvOut(folder / "assets.csv")
    p_out.row(["partnership_id", "name", "legal_form", "city", "country", "start_date",
               "end_date", "accountable_to_id", "accountable_to_name", "decision_body",
               "source_url"])  # fmt: skip
    m_out.row(["partnership_id", "member_id", "member_name", "member_type", "role", "share_pct",
               "voting_pct", "start_date", "end_date", "source_url"])  # fmt: skip
    j_out.row(["project_id", "partnership_id", "title", "city", "start_date", "end_date",
               "budget", "currency", "cordis_id", "ocids", "kohesio_id", "source_url"])  # fmt: skip
    a_out.row(["asset_id", "project_id", "description", "asset_type", "owner_id", "owner_name",
               "licence"])  # fmt: skip
    counts = [0, 0, 0, 0]
    for k in range(n_partnerships):
        pid = f"BENCH-PART-{k:05d}"
        council = world.councils[k % len(world.councils)]
        form = rng.choice(("company", "mou", "consortium", "programme", "contract"))
        start = random_date(rng, 2015, 2023)
        p_out.row([pid, f"{rng.choice(_WORDS_A)} {rng.choice(_WORDS_B)} Partnership", form,
                   "Harbourton", "GB", fmt_date(start, "uk"), "", council.org_id,
                   f"{council.name} (Cabinet)", "Board", "https://harbourton.example/gov"])  # fmt: skip
        counts[0] += 1
        shares = [51, 30, 19]
        for m in range(rng.randint(4, 10)):
            org = world.org(rng)
            if m < 3:  # owners (with shares) of a company; leads and signatories otherwise
                role = "owner" if form == "company" else ("lead", "signatory", "partner")[m]
            else:
                role = rng.choice(
                    ("board_member", "advisory_panel", "partner", "supplier", "signatory")
                )
            share = f"{shares[m]}%" if m < 3 and form == "company" else ""
            if m == 3:
                member = (f"BENCH-PERSON-{k:05d}", f"Member {k}", "person")
            else:
                member = (
                    org.org_id,
                    org.name,
                    {"company": "company", "charity": "ngo", "university": "university"}[org.kind],
                )
            m_out.row([pid, member[0], member[1], member[2], role,
                       share, share, fmt_date(start, "iso"), "", "https://harbourton.example/gov"])  # fmt: skip
            counts[1] += 1
        for j in range(2):
            prj = f"BENCH-PRJ-{k:05d}-{j}"
            project_ids.append(prj)
            j_out.row([
                prj, pid, f"{rng.choice(_PURPOSES).capitalize()}", "Harbourton",
                fmt_date(start, "uk"), fmt_date((start[0] + 3, start[1], start[2]), "uk"),
                fmt_thousands(money(rng, 50_000, 5_000_000)), "GBP",
                _take(cordis, rng, 1), _take(processes, rng, 2), _take(operations, rng, 1),
                "https://harbourton.example/gov",
            ])  # fmt: skip
            counts[2] += 1
        owner = world.org(rng)
        a_out.row([f"BENCH-AST-{k:05d}", f"BENCH-PRJ-{k:05d}-0", "Open datasets", "data",
                   owner.org_id, owner.name, "OGL-UK-3.0"])  # fmt: skip
        counts[3] += 1
    for out, name, n in zip(
        (p_out, m_out, j_out, a_out),
        ("partnerships.csv", "partnership_members.csv", "projects.csv", "assets.csv"),
        counts,
        strict=True,
    ):
        entries.append(
            FileEntry(f"governance/{name}", "governance", "csv", rows=n, bytes=out.close())
        )
    return project_ids


# ----------------------------------------------------------------------------------- OCDS


def _ocds_release(
    rng: random.Random,
    ocid: str,
    step: int,
    buyer: Council,
    value: int,
    supplier: Org,
    opened: tuple[int, int, int],
) -> dict[str, Any]:
    tags = (["tender"], ["award"], ["contract"], ["contractAmendment"])[min(step, 3)]
    months = opened[1] - 1 + 2 * step  # each stage two months after the previous one
    ymd = (opened[0] + months // 12, months % 12 + 1, opened[2])
    release: dict[str, Any] = {
        "ocid": ocid,
        "id": f"{ocid}-{tags[0]}-{step}",
        "date": fmt_date(ymd, "isotime"),
        "tag": tags[0] if rng.random() < 0.1 else tags,  # a string tag, as some publishers do
        "initiationType": "tender",
        "buyer": {"id": buyer.org_id, "name": buyer.name},
        "parties": [
            {"id": buyer.org_id, "name": buyer.name, "roles": ["buyer"],
             "identifier": {"scheme": "GB-LAE", "id": buyer.org_id[7:]}},
        ],
    }  # fmt: skip
    currency = "GBP" if rng.random() > 0.05 else "gbp"
    if step == 0:
        release["tender"] = {
            "id": f"{ocid}-tender",
            "title": f"{rng.choice(_PURPOSES).capitalize()} ({buyer.short})",
            "status": "active",
            "value": {"amount": value / 100, "currency": currency},
            "procurementMethod": rng.choice(("open", "selective", "limited")),
            "numberOfTenderers": rng.randint(1, 8),
        }
    else:
        release["parties"].append(
            {"id": supplier.org_id, "name": name_variant(supplier, rng), "roles": ["supplier"],
             "identifier": {"scheme": supplier.org_id[:6], "id": supplier.org_id[7:]}}
        )  # fmt: skip
        release["awards"] = [
            {
                "id": f"{ocid}-award-1",
                "date": fmt_date(ymd, "isotime"),
                "status": "active",
                "value": {"amount": value / 100, "currency": currency},
                "suppliers": [{"id": supplier.org_id, "name": supplier.name}],
            }
        ]
        if step >= 2:
            release["contracts"] = [
                {"id": f"{ocid}-contract-1", "awardID": f"{ocid}-award-1", "status": "active",
                 "value": {"amount": value / 100 * (1.1 if step == 3 else 1), "currency": currency}}
            ]  # fmt: skip
    return release


def _ocds_releases(
    world: World, rng: random.Random, prefix: str, n: int
) -> Iterator[dict[str, Any]]:
    """n releases, 1-4 per ocid, in date order per process (the way publishers append)."""
    written = 0
    process = 0
    while written < n:
        process += 1
        ocid = f"ocds-bench9-{prefix}-{process:07d}"
        buyer = world.councils[rng.randrange(len(world.councils))]
        supplier = world.org(rng)
        value = money(rng, 5_000, 5_000_000)
        opened = random_date(rng, 2019, 2024)
        for step in range(rng.choice((1, 2, 2, 3, 3, 4))):
            release = _ocds_release(rng, ocid, step, buyer, value, supplier, opened)
            copies = 2 if rng.random() < DUPLICATE_RATE else 1  # the same release twice
            for _ in range(copies):
                if written >= n:
                    return
                yield release
                written += 1


def write_ocds_package(
    path: Path, entry: FileEntry, world: World, rng: random.Random, rows: int, prefix: str
) -> list[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    ocids: list[str] = []
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(json.dumps({
            "uri": f"https://harbourton.example/ocds/{path.name}",
            "publishedDate": "2025-06-30T00:00:00Z",
            "publisher": {"name": "Harbourton Procurement Portal (benchmark)"},
            "version": "1.1",
        })[:-1])  # fmt: skip
        fh.write(', "releases": [\n')
        for k, release in enumerate(_ocds_releases(world, rng, prefix, rows)):
            if k:
                fh.write(",\n")
            fh.write(json.dumps(release, ensure_ascii=False))
            if len(ocids) < 1000 and (not ocids or ocids[-1] != release["ocid"]):
                ocids.append(release["ocid"])
            entry.rows += 1
        fh.write("\n]}\n")
    entry.bytes = path.stat().st_size
    return ocids


def write_ocds_jsonl(
    path: Path, entry: FileEntry, world: World, rng: random.Random, rows: int, prefix: str
) -> list[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    ocids: list[str] = []
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for release in _ocds_releases(world, rng, prefix, rows):
            fh.write(json.dumps(release, ensure_ascii=False))
            fh.write("\n")
            if len(ocids) < 1000 and (not ocids or ocids[-1] != release["ocid"]):
                ocids.append(release["ocid"])
            entry.rows += 1
    entry.bytes = path.stat().st_size
    return ocids


# ----------------------------------------------------------------------------------- BODS

_GIVEN = ("Aisha", "Tom", "Ingrid", "Rafael", "Mei", "Oskar", "Nia", "Pavel", "Lena", "Kofi")
_FAMILY = ("Rahman", "Hale", "Achterberg", "Okafor", "Lindqvist", "Moreau", "Novak", "Byrne")
_BODS_PUBLISHER = {"name": "Harbourton Beneficial Ownership Register (INVENTED benchmark data)"}


def _bods_chains(world: World, rng: random.Random, prefix: str, n: int) -> Iterator[dict[str, Any]]:
    """Ownership chains 1-4 deep: a company that receives money <- holdings <- a person.
    Yields (shape-neutral) nodes and edges; the writers give them a BODS version's form."""
    written = 0
    chain = 0
    while written < n:
        chain += 1
        # each money recipient declares its owners once; when every company has a chain, later
        # chains add 5% minority holders (a subject's direct shares never pass 100%)
        target, reused = world.next_bods_subject()
        date = fmt_date(random_date(rng, 2016, 2024), "iso")
        depth = rng.choice((1, 1, 2, 2, 3, 4))
        below = {"kind": "entity", "id": f"{prefix}-{chain}-e0", "name": target.name,
                 "number": target.company_number, "date": date}  # fmt: skip
        yield below
        written += 1
        for level in range(1, depth + 1):
            if level < depth:
                number = world.next_holding_number()
                above = {"kind": "entity", "id": f"{prefix}-{chain}-e{level}",
                         "name": f"{rng.choice(_WORDS_A)} {rng.choice(_WORDS_B)} Holdings Ltd",
                         "number": number, "date": date}  # fmt: skip
            else:
                above = {"kind": "person", "id": f"{prefix}-{chain}-p",
                         "name": f"{rng.choice(_GIVEN)} {rng.choice(_FAMILY)}", "date": date}  # fmt: skip
            yield above
            share = 5 if reused and level == 1 else rng.choice((100, 75, 60, 51, 40, 25))
            yield {"kind": "relationship", "id": f"{prefix}-{chain}-r{level}",
                   "subject": below["id"], "party": above["id"], "share": share,
                   "beneficial": above["kind"] == "person", "date": date}  # fmt: skip
            written += 2
            below = above


def _bods_04(node: dict[str, Any], statement_id: str) -> dict[str, Any]:
    base: dict[str, Any] = {
        "statementId": statement_id,
        "declarationSubject": node.get("subject", node["id"]),
        "statementDate": node["date"],
        "recordId": node["id"],
        "recordStatus": "new",
        "recordType": node["kind"],
        "publicationDetails": {"publicationDate": "2025-06-30", "bodsVersion": "0.4",
                               "publisher": _BODS_PUBLISHER},
    }  # fmt: skip
    if node["kind"] == "entity":
        base["recordDetails"] = {
            "isComponent": False, "entityType": {"type": "registeredEntity"}, "name": node["name"],
            "jurisdiction": {"name": "United Kingdom", "code": "GB"},
            "identifiers": [{"scheme": "GB-COH", "id": node["number"]}],
        }  # fmt: skip
    elif node["kind"] == "person":
        base["recordDetails"] = {
            "isComponent": False, "personType": "knownPerson",
            "names": [{"type": "legal", "fullName": node["name"]}],
            "nationalities": [{"name": "United Kingdom", "code": "GB"}],
            # personal data the parser must drop before storing anything
            "birthDate": "1970-01-01",
            "addresses": [{"type": "residence", "address": "1 Invented Row, Harbourton"}],
        }  # fmt: skip
    else:
        base["recordDetails"] = {
            "isComponent": False, "subject": node["subject"], "interestedParty": node["party"],
            "interests": [{"type": "shareholding", "directOrIndirect": "direct",
                           "beneficialOwnershipOrControl": node["beneficial"],
                           "startDate": node["date"], "share": {"exact": node["share"]}}],
        }  # fmt: skip
    return base


def _bods_03(node: dict[str, Any], statement_id: str) -> dict[str, Any]:
    publication = {"publicationDate": "2025-06-30", "bodsVersion": "0.3",
                   "publisher": _BODS_PUBLISHER}  # fmt: skip
    sid = f"{node['id']}-s"
    if node["kind"] == "entity":
        return {"statementID": sid, "statementType": "entityStatement", "isComponent": False,
                "statementDate": node["date"], "entityType": "registeredEntity",
                "name": node["name"], "incorporatedInJurisdiction": {"name": "United Kingdom", "code": "GB"},
                "identifiers": [{"scheme": "GB-COH", "id": node["number"]}],
                "publicationDetails": publication}  # fmt: skip
    if node["kind"] == "person":
        return {"statementID": sid, "statementType": "personStatement", "isComponent": False,
                "statementDate": node["date"], "personType": "knownPerson",
                "names": [{"type": "individual", "fullName": node["name"]}],
                "birthDate": "1970-01-01", "publicationDetails": publication}  # fmt: skip
    party_kind = (
        "describedByPersonStatement"
        if node["party"].endswith("-p")
        else "describedByEntityStatement"
    )
    low = max(0, node["share"] - 25)
    _ = statement_id
    return {"statementID": sid, "statementType": "ownershipOrControlStatement",
            "isComponent": False, "statementDate": node["date"],
            "subject": {"describedByEntityStatement": f"{node['subject']}-s"},
            "interestedParty": {party_kind: f"{node['party']}-s"},
            "interests": [{"type": "shareholding", "directOrIndirect": "direct",
                           "beneficialOwnershipOrControl": node["beneficial"],
                           "startDate": node["date"],
                           "share": {"exclusiveMinimum": low, "maximum": node["share"]}}],
            "publicationDetails": publication}  # fmt: skip


def write_bods(
    path: Path,
    entry: FileEntry,
    world: World,
    rng: random.Random,
    rows: int,
    prefix: str,
    json_lines: bool,
    dirty: bool,
) -> None:
    """BODS 0.4 records as a JSON array, or BODS 0.3 statements as JSON Lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    forced = False
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        if not json_lines:
            fh.write("[\n")
        first = True
        for k, node in enumerate(_bods_chains(world, rng, prefix, rows)):
            if entry.rows >= rows:
                break
            copies = 2 if rng.random() < DUPLICATE_RATE else 1  # republished statement
            for copy in range(copies):
                if entry.rows >= rows:
                    break
                entry.duplicates += copy
                stmt = _bods_03(node, "") if json_lines else _bods_04(node, f"{prefix}-s{k}")
                text = json.dumps(stmt, ensure_ascii=False)
                if dirty and ((not forced and entry.rows >= rows // 2)
                              or rng.random() < BAD_STRUCTURE_RATE):  # fmt: skip
                    forced = True
                    # JSON Lines: a truncated line; array: an item that is no object
                    text = text[: len(text) // 2] if json_lines else '"statement withdrawn"'
                    entry.bad_structure += 1
                if not json_lines and not first:
                    fh.write(",\n")
                fh.write(text)
                if json_lines:
                    fh.write("\n")
                first = False
                entry.rows += 1
        if not json_lines:
            fh.write("\n]\n")
    entry.bytes = path.stat().st_size


# ------------------------------------------------------------------------- the generator


@dataclass(frozen=True)
class SourceInfo:
    """A raw folder the generator can write, and the raw asset that must exist to read it."""

    name: str
    raw_asset: str  # asset key (user string) of the raw table; the source is generated only
    # when the definitions have it
    implemented: bool = True


SOURCES: tuple[SourceInfo, ...] = (
    SourceInfo("360giving", "raw/raw_360giving_grants"),
    SourceInfo("council_spend", "raw/raw_council_spend"),
    SourceInfo("eu_cordis", "raw/raw_cordis_projects"),
    SourceInfo("eu_fts", "raw/raw_eu_fts_commitments"),
    SourceInfo("eu_kohesio", "raw/raw_kohesio"),
    SourceInfo("private", "raw/raw_private_funding"),
    SourceInfo("governance", "raw/raw_governance_partnerships"),
    SourceInfo("ocds", "raw/raw_ocds_releases"),
    SourceInfo("bods", "raw/raw_bods_statements"),
    # A new source: write its files in `generate()` (a writer per format, next to the others)
    # and add SourceInfo(folder, raw asset key); `implemented=False` keeps a planned one out.
)
SOURCE_NAMES = tuple(s.name for s in SOURCES)


def wired_sources(asset_keys: set[str] | None = None) -> list[str]:
    """Sources whose raw asset is in the pipeline's definitions (what a build would read)."""
    if asset_keys is None:
        from pipelines.definitions import build_definitions

        defs = build_definitions()
        graph = defs.resolve_asset_graph()
        asset_keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    return [s.name for s in SOURCES if s.implemented and s.raw_asset in asset_keys]


def generate(scale: float, seed: int, out: Path, sources: list[str] | None = None) -> Manifest:
    """Write the synthetic raw folder into `out` (created; must be empty or absent)."""
    started = time.perf_counter()
    chosen = [s for s in SOURCE_NAMES if s in (sources or SOURCE_NAMES)]
    unknown = sorted(set(sources or []) - set(SOURCE_NAMES))
    if unknown:
        raise ValueError(f"unknown sources {unknown}; known: {', '.join(SOURCE_NAMES)}")
    not_ready = [s.name for s in SOURCES if s.name in chosen and not s.implemented]
    if not_ready:
        raise NotImplementedError(f"no generator yet for {', '.join(not_ready)} (see SOURCES)")
    out.mkdir(parents=True, exist_ok=True)
    world = World(scale, seed)
    manifest = Manifest(scale, seed, GENERATOR_VERSION, chosen)
    total = FUNDING_ROWS_AT_SCALE_1 * scale
    rows = {k: max(1, round(total * share)) for k, share in FUNDING_SHARES.items()}
    entries = manifest.files

    def on(name: str) -> bool:
        return name in chosen

    if on("360giving"):
        start = 1
        csv_ids: list[str] = []
        for i, n in enumerate(split_rows(rows["360giving_csv"], ROWS_PER_FILE["360giving_csv"])):
            rel = f"360giving/grants-{i + 1:03d}.csv"
            e = FileEntry(rel, "360giving", "csv")
            funder = world.funders[start % len(world.funders)]
            write_360_csv(
                out / rel, e, world, file_rng(seed, rel), n, i % DIRTY_FILE_EVERY == 1, start
            )
            csv_ids.extend(
                f"360G-{funder.code}-{start + k:07d}" for k in range(0, n, max(1, n // 200))
            )
            start += n
            entries.append(e)
        for i, n in enumerate(split_rows(rows["360giving_json"], ROWS_PER_FILE["360giving_json"])):
            rel = f"360giving/grants-{i + 1:03d}.json"
            e = FileEntry(rel, "360giving", "json")
            write_360_json(out / rel, e, world, file_rng(seed, rel), n, start, csv_ids)
            start += n
            entries.append(e)

    if on("council_spend"):
        counts = split_rows(rows["council_spend"], ROWS_PER_FILE["council_spend"], min_files=3)
        for i, n in enumerate(counts):
            council = world.councils[i % len(world.councils)]
            layout = COUNCIL_LAYOUTS[i % len(COUNCIL_LAYOUTS)]
            quarter = i // len(world.councils)
            rel = f"council_spend/{council.slug}-{layout['name']}-{2019 + quarter // 4}-q{quarter % 4 + 1}-{i:04d}.csv"
            e = FileEntry(rel, "council_spend", "csv")
            dirty = i % DIRTY_FILE_EVERY == 2
            write_council_file(out / rel, e, world, file_rng(seed, rel), n, council, layout, dirty)
            entries.append(e)
        e = FileEntry(f"council_spend/{COUNCILS_FILE}", "council_spend", "csv")
        write_councils_csv(out / e.path, e, world.councils)
        entries.append(e)

    cordis_ids: list[str] = []
    if on("eu_cordis"):
        cordis_ids = write_cordis(
            out / "eu_cordis", entries, world, seed,
            rows["eu_cordis_projects"], rows["eu_cordis_organisations"],
        )  # fmt: skip

    if on("eu_fts"):
        for i, n in enumerate(split_rows(rows["eu_fts"], ROWS_PER_FILE["eu_fts"])):
            year = 2024 - i % 5
            rel = f"eu_fts/fts_{year}_{i:03d}.csv"
            e = FileEntry(rel, "eu_fts", "csv")
            write_fts(out / rel, e, world, file_rng(seed, rel), n, year)
            entries.append(e)

    kohesio_ids: list[str] = []
    if on("eu_kohesio"):
        for i, n in enumerate(split_rows(rows["eu_kohesio"], ROWS_PER_FILE["eu_kohesio"])):
            rel = f"eu_kohesio/operations-{i + 1:03d}.tsv"
            e = FileEntry(rel, "eu_kohesio", "tsv")
            ids = write_kohesio(
                out / rel, e, world, file_rng(seed, rel), n, i, i % DIRTY_FILE_EVERY == 0
            )
            kohesio_ids.extend(ids[:: max(1, len(ids) // 500)])
            entries.append(e)

    ocids: list[str] = []
    if on("ocds"):
        n_rel = max(1, round(OCDS_RELEASES_AT_SCALE_1 * scale))
        n_pkg = round(n_rel * 0.6)
        for i, n in enumerate(split_rows(n_pkg, ROWS_PER_FILE["ocds_package"])):
            rel = f"ocds/release-package-{i + 1:03d}.json"
            e = FileEntry(rel, "ocds", "json")
            ocids += write_ocds_package(out / rel, e, world, file_rng(seed, rel), n, f"P{i:03d}")
            entries.append(e)
        for i, n in enumerate(split_rows(n_rel - n_pkg, ROWS_PER_FILE["ocds_jsonl"])):
            rel = f"ocds/releases-{i + 1:03d}.jsonl"
            e = FileEntry(rel, "ocds", "jsonl")
            ocids += write_ocds_jsonl(out / rel, e, world, file_rng(seed, rel), n, f"L{i:03d}")
            entries.append(e)
        extra_ocds = FileEntry(f"{EXTRA_OCDS_DIR}/{EXTRA_OCDS_FILE}", "ocds", "jsonl")
        write_ocds_jsonl(
            out / extra_ocds.path, extra_ocds, world, file_rng(seed, extra_ocds.path),
            EXTRA_OCDS_RELEASES, "X000",
        )  # fmt: skip
        manifest.extra_ocds.append(extra_ocds)

    if on("bods"):
        n_stmt = max(1, round(BODS_STATEMENTS_AT_SCALE_1 * scale))
        n_array = round(n_stmt * 0.6)
        for i, n in enumerate(split_rows(n_array, ROWS_PER_FILE["bods_array"])):
            rel = f"bods/register-{i + 1:03d}.json"
            e = FileEntry(rel, "bods", "json")
            dirty = i % DIRTY_FILE_EVERY == 1
            write_bods(out / rel, e, world, file_rng(seed, rel), n, f"bench-a{i}", False, dirty)
            entries.append(e)
        for i, n in enumerate(split_rows(n_stmt - n_array, ROWS_PER_FILE["bods_jsonl"])):
            rel = f"bods/psc-extract-{i + 1:03d}.jsonl"
            e = FileEntry(rel, "bods", "jsonl")
            dirty = i % DIRTY_FILE_EVERY == 1
            write_bods(out / rel, e, world, file_rng(seed, rel), n, f"bench-l{i}", True, dirty)
            entries.append(e)

    project_ids: list[str] = []
    if on("governance"):
        n_part = max(5, int(4_000 * scale))
        project_ids = write_governance(
            out / "governance", entries, world, seed, n_part, cordis_ids, kohesio_ids, ocids
        )

    if on("private"):
        for i, n in enumerate(split_rows(rows["private"], ROWS_PER_FILE["private"])):
            rel = f"private/private-funding-{i + 1:03d}.csv"
            e = FileEntry(rel, "private", "csv")
            write_private(
                out / rel, e, world, file_rng(seed, rel), n, i % DIRTY_FILE_EVERY == 1, project_ids
            )
            entries.append(e)

    if on("360giving"):
        # the new 360Giving files of the one-file runs: (file, first row number, options, list)
        extras: list[tuple[str, int, dict[str, int], list[FileEntry]]] = [
            (f"{EXTRA_DIR}/{EXTRA_FILE}", 9_000_000, {}, manifest.extra),
            (f"{EXTRA_NEW_ORGS_DIR}/{EXTRA_NEW_ORGS_FILE}", 9_100_000,
             {"new_org_every": NEW_ORG_EVERY}, manifest.extra_new_orgs),
            (f"{EXTRA_NEAR_NAMES_DIR}/{EXTRA_NEAR_NAMES_FILE}", 9_200_000,
             {"near_name_every": NEAR_NAME_EVERY}, manifest.extra_near_names),
        ]  # fmt: skip
        for rel, start, options, listed in extras:
            e = FileEntry(rel, "360giving", "csv")
            write_360_csv(
                out / rel, e, world, file_rng(seed, rel), EXTRA_ROWS, False, start, **options
            )
            listed.append(e)

    manifest.files.sort(key=lambda f: f.path)
    manifest.seconds = time.perf_counter() - started
    data = manifest.to_json()
    data.pop("seconds")  # keep the manifest itself byte-stable across runs
    (out / MANIFEST_NAME).write_text(
        json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    return manifest


# ---------------------------------------------------------------------------------- cache

CACHE_DIR = Path(os.environ.get("BENCH_DATA_DIR") or Path(__file__).resolve().parent / ".data")


def dataset_dir(scale: float, seed: int, sources: list[str], cache_dir: Path = CACHE_DIR) -> Path:
    tag = hashlib.sha256(",".join(sorted(sources)).encode()).hexdigest()[:8]
    return cache_dir / f"scale{scale:g}-seed{seed}-v{GENERATOR_VERSION}-{tag}"


def ensure_dataset(
    scale: float,
    seed: int,
    sources: list[str],
    cache_dir: Path = CACHE_DIR,
    log: Callable[[str], None] = print,
) -> tuple[Path, float | None]:
    """The cached raw folder for (scale, seed, generator version, sources); generated when
    missing. Returns (folder, seconds spent generating or None when it came from the cache)."""
    target = dataset_dir(scale, seed, sources, cache_dir)
    if (target / MANIFEST_NAME).is_file():
        log(f"generated data from cache: {target}")
        return target, None
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"generating scale {scale:g} seed {seed} ({', '.join(sources)}) -> {target}")
    manifest = generate(scale, seed, tmp, sources)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    log(f"generated {sum(f.rows for f in manifest.files):,} records in {len(manifest.files)} files "
        f"({sum(f.bytes for f in manifest.files) / 1e6:,.0f} MB) in {manifest.seconds:.1f}s")  # fmt: skip
    return target, manifest.seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench.generate", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--scale", type=float, default=0.01, help="1 = 1M funding rows")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, required=True, help="output folder (raw dir)")
    parser.add_argument(
        "--sources",
        default="wired",
        help="comma-separated folders, 'all' (every implemented one) or 'wired' (those the "
        "pipeline definitions read; default)",
    )
    args = parser.parse_args(argv)
    if args.sources == "wired":
        sources = wired_sources()
    elif args.sources == "all":
        sources = [s.name for s in SOURCES if s.implemented]
    else:
        sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} is not empty")
    manifest = generate(args.scale, args.seed, args.out, sources)
    summary = manifest.to_json()
    print(
        json.dumps(
            {k: summary[k] for k in ("rows_by_source", "total_rows", "total_bytes", "seconds")},
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
