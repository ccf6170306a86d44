"""``ray-gan verify OUT``: an audit of a batch job's output (or of an HTTP request's output
directory) against its manifest.

It checks that every manifest row's image object exists and has the recorded sha256 (for
``layout: tar``, the row's byte range of its shard, each shard read once), that no image
id or object (or shard range) appears twice, that every row belongs to the job and its model
digest, and — where ``job.json`` gives the spec — that the job is complete, the ids
are exactly the ones the spec asks for (every style, variants ``0 … n-1``) and each row's
seed is the candidate its ``attempt`` names, every seed skipped before it listed with a reason. Parts are read
one at a time and objects are hashed on a thread pool, so a million-image output is
checked in bounded memory (one set of ids).
"""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow.parquet as pq

from ray_gan import storage
from ray_gan.batch.job import JOB_JSON
from ray_gan.manifest import MANIFEST_DIR, manifest_files

COLUMNS = ["job_id", "image_id", "style", "variant", "image_uri", "image_sha256", "weights_sha256"]
GATE_COLUMNS = ["seed", "attempt", "skipped"]  # absent from parts written before the quality gates
RANGE_COLUMNS = ["image_offset", "image_size"]  # absent from parts written before tar shards


@dataclass
class VerifyReport:
    output: str
    rows: int = 0
    objects_checked: int = 0
    expected: int | None = None  # images the spec asks for (None: no job.json)
    problems: list[str] = field(default_factory=list)
    more_problems: int = 0  # beyond the ones listed

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: str, limit: int) -> None:
        if len(self.problems) < limit:
            self.problems.append(problem)
        else:
            self.more_problems += 1

    def summary(self) -> str:
        head = (f"verify {self.output}: {self.rows} manifest rows, {self.objects_checked} objects checked"
                + (f", {self.expected} images expected" if self.expected is not None else ", no job.json"))
        if self.ok:
            return head + ": OK"
        lines = [head + f": {len(self.problems) + self.more_problems} problem(s)"] + [f"  - {p}" for p in self.problems]
        if self.more_problems:
            lines.append(f"  … and {self.more_problems} more")
        return "\n".join(lines)


def _hash_problem(where: str, data: bytes, want: str) -> str | None:
    got = hashlib.sha256(data).hexdigest()
    return None if got == want else f"{where}: sha256 {got[:12]}… != manifest {want[:12]}…"


def _check_object(uri: str, want: str) -> str | None:
    try:
        data = storage.read_bytes(uri)
    except (storage.StorageError, FileNotFoundError, OSError) as e:
        return f"{uri}: missing ({e})"
    return _hash_problem(uri, data, want)


def _check_rows(rows: list[dict]) -> list[str | None]:
    """A problem (or None) per row: one row of a whole object, or every row of one shard
    (the shard read once)."""
    if rows[0].get("image_offset") is None:
        return [_check_object(rows[0]["image_uri"], rows[0]["image_sha256"])]
    uri = rows[0]["image_uri"]
    try:
        data = storage.read_bytes(uri)
    except (storage.StorageError, FileNotFoundError, OSError) as e:
        return [f"{uri}: missing ({e})"] + [None] * (len(rows) - 1)
    out = []
    for r in rows:
        a, n = int(r["image_offset"]), int(r["image_size"] or 0)
        where = f"{uri} bytes {a}–{a + n} ({r['image_id']})"
        out.append(f"{where}: beyond the shard's {len(data)} bytes" if a + n > len(data)
                   else _hash_problem(where, data[a:a + n], r["image_sha256"]))
    return out


def _seed_problem(row: dict, spec: dict) -> str | None:
    """A row's seed and skipped seeds must follow the job's seed rule (candidate ``a`` of
    variant ``v``: ``seed_base + v + a · variants_per_style``), with a reason per skip."""
    base, n, v = int(spec.get("seed_base", 0)), int(spec["variants_per_style"]), int(row["variant"])
    attempt = int(row["attempt"])
    if int(row["seed"]) != base + v + attempt * n:
        return f"seed {row['seed']} is not candidate {attempt} of variant {v} (seed rule: seed_base + variant + " \
               "attempt × variants_per_style)"
    skipped = row.get("skipped") or []
    if [int(s["seed"]) for s in skipped] != [base + v + a * n for a in range(attempt)] or \
            not all(s["reason"] for s in skipped):
        return f"skipped seeds {[s['seed'] for s in skipped]} do not account for attempt {attempt}"
    return None


def verify_output(output: str, workers: int = 16, max_problems: int = 200) -> VerifyReport:
    output = storage.normalize(output)
    report = VerifyReport(output)
    job_json = storage.join(output, JOB_JSON)
    doc = storage.read_json(job_json) if storage.exists(job_json) else None
    spec = doc["spec"] if doc else None
    if doc is not None:
        report.expected = len(doc["styles"]) * int(spec["variants_per_style"])
        if doc.get("status") != "complete":
            report.add(f"job.json status is {doc.get('status')!r}, not 'complete'", max_problems)
    parts = manifest_files(output)
    if not parts:
        report.add(f"no manifest parts under {storage.join(output, MANIFEST_DIR)}", max_problems)
    ids: set[str] = set()
    uris: set[str] = set()
    styles = set(doc["styles"]) if doc else None
    with ThreadPoolExecutor(workers) as pool:
        for part in parts:
            data = storage.read_bytes(part)
            table = pq.read_table(io.BytesIO(data))
            rows = table.select([c for c in COLUMNS + GATE_COLUMNS + RANGE_COLUMNS
                                 if c in table.column_names]).to_pylist()
            report.rows += len(rows)
            for r in rows:
                where = f"{part.rsplit('/', 1)[-1]}: {r['image_id']}"
                if r["image_id"] in ids:
                    report.add(f"{where}: duplicate image id", max_problems)
                ids.add(r["image_id"])
                key = r["image_uri"] if r.get("image_offset") is None else f"{r['image_uri']}@{r['image_offset']}"
                if key in uris:
                    report.add(f"{where}: image object {key} listed twice", max_problems)
                uris.add(key)
                if doc is not None:
                    if r["job_id"] != spec["job_id"]:
                        report.add(f"{where}: job_id {r['job_id']!r}, not {spec['job_id']!r}", max_problems)
                    if r["weights_sha256"] != doc["weights_sha256"]:
                        report.add(f"{where}: rendered by weights {r['weights_sha256'][:12]}…, the job's are "
                                   f"{doc['weights_sha256'][:12]}…", max_problems)
                    if r["style"] not in styles or not 0 <= int(r["variant"]) < int(spec["variants_per_style"]):
                        report.add(f"{where}: not an image of this job's spec", max_problems)
                    elif r.get("attempt") is not None:
                        problem = _seed_problem(r, spec)
                        if problem:
                            report.add(f"{where}: {problem}", max_problems)
            groups: dict[str, list[dict]] = {}  # a shard's rows together; a whole object alone
            for i, r in enumerate(rows):
                groups.setdefault(r["image_uri"] if r.get("image_offset") is not None else f"#{i}", []).append(r)
            for problems in pool.map(_check_rows, groups.values()):
                for problem in problems:
                    report.objects_checked += 1
                    if problem:
                        report.add(problem, max_problems)
    if report.expected is not None and len(ids) != report.expected:
        report.add(f"{len(ids)} distinct images in the manifest, the spec asks for {report.expected}", max_problems)
    return report
