"""The batch's output folder: per-clip folders published whole, what is finished, and the summary files.

No bpy, no torch. Layout of ``DIR``::

    DIR/<clip>/            result.json, log.txt, the Take (.take.npz + .take.json), exports, overlay, thumb.jpg
    DIR/batch_summary.json every clip of the last run (done now or before), with its figures and errors
    DIR/batch_summary.csv  the same, one row per clip
    DIR/batch_report.md    a short report with a thumbnail per clip
    DIR/.staging/          work in progress (removed when a batch starts)
    DIR/.batch.lock        held while a batch writes here

A clip is converted in ``.staging/<clip>-…/`` and only then renamed to ``DIR/<clip>/`` (the same file system, so the
rename is atomic): a crash or Ctrl-C loses at most the clips in progress, and a clip folder is always whole. A clip
counts as finished when its ``result.json`` says ``ok`` for the same settings and the same input (size and
modification time) and every file it lists is there; finished clips are skipped unless ``--force``.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from inference_server.take import atomic_write_bytes, make_shareable

from .inputs import Clip

SUMMARY_JSON = "batch_summary.json"
SUMMARY_CSV = "batch_summary.csv"
REPORT_MD = "batch_report.md"
CSV_COLUMNS = ("name", "status", "skipped", "source", "frames", "duration_s", "seconds", "realtime", "person_pct",
               "left_hand_pct", "right_hand_pct", "residual_px_median", "confidence_mean", "jitter_mm_per_frame2",
               "contact_pct", "root_travel_m", "camera", "map_id", "engine_peak_rss_mb", "blender_peak_rss_mb",
               "stage", "error", "fix")


class StoreError(Exception):
    def __init__(self, message: str, fix: str):
        super().__init__(message)
        self.fix = fix


def write_atomic(path: Path, text: str) -> None:
    """A whole text file under a temporary name beside it, then renamed into place."""
    atomic_write_bytes(path, text.encode("utf-8"))


class OutputFolder:
    def __init__(self, root: Path):
        self.root = Path(root).absolute()
        self.staging = self.root / ".staging"
        self._lock_handle = None

    # --- whole batch ----------------------------------------------------------------------------------------------
    def open(self) -> None:
        """Create the folder, take its lock (one batch at a time per folder), clear what a killed run left."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.staging.mkdir(exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the output folder {self.root}: {exc.strerror or exc}",
                             "choose a folder you can write to with --out") from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreError(f"the output folder {self.root} is not writable", "choose another folder with --out")
        import fcntl

        handle = open(self.root / ".batch.lock", "a+")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            raise StoreError(f"another batch is writing to {self.root}",
                             "wait for it to end, or give this one another --out folder") from exc
        self._lock_handle = handle
        for leftover in self.staging.iterdir():
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)

    def close(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    # --- one clip -------------------------------------------------------------------------------------------------
    def folder(self, clip: Clip) -> Path:
        return self.root / clip.name

    def scratch(self, clip: Clip) -> Path:
        scratch = Path(tempfile.mkdtemp(prefix=f"{clip.name}-", dir=self.staging))
        make_shareable(scratch, directory=True)  # it becomes the clip's folder: not mkdtemp's private 0700
        return scratch

    def finished(self, clip: Clip, settings_key: str) -> dict | None:
        """The earlier result of ``clip`` if it is finished with these settings on this input; None otherwise."""
        try:
            record = json.loads((self.folder(clip) / "result.json").read_text())
        except (OSError, ValueError):
            return None
        if (record.get("status") != "ok" or record.get("settings_key") != settings_key
                or record.get("fingerprint") != clip.fingerprint()):
            return None
        if not all((self.folder(clip) / name).is_file() for name in record.get("files", [])):
            return None
        return record

    def publish(self, clip: Clip, scratch: Path) -> Path:
        """Put the scratch folder in place as the clip's folder (replacing an older one)."""
        final = self.folder(clip)
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f"old-{clip.name}-", dir=self.staging))
            os.replace(final, old / "x")
        os.replace(scratch, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def write_files(self, clip: Clip, files: dict[str, bytes]) -> Path:
        """A clip's files that came back from another machine (Ray): written to scratch, then published."""
        scratch = self.scratch(clip)
        for name, data in files.items():
            if "/" in name or name.startswith("."):
                continue  # only plain file names come back
            (scratch / name).write_bytes(data)
        return self.publish(clip, scratch)

    # --- summary --------------------------------------------------------------------------------------------------
    def write_summary(self, records: list[dict], batch: dict) -> dict[str, Path]:
        counts = {"ok": 0, "failed": 0, "cancelled": 0, "skipped": 0, "pending": 0}
        for record in records:
            if record.get("skipped"):
                counts["skipped"] += 1
            counts[record.get("status", "pending")] = counts.get(record.get("status", "pending"), 0) + 1
        batch = dict(batch, counts=counts, written=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        paths = {"json": self.root / SUMMARY_JSON, "csv": self.root / SUMMARY_CSV, "md": self.root / REPORT_MD}
        write_atomic(paths["json"], json.dumps({"batch": batch, "clips": records}, indent=1))
        write_atomic(paths["csv"], summary_csv(records))
        write_atomic(paths["md"], report_markdown(records, batch, self.root))
        return paths


def _row(record: dict) -> dict:
    metrics = record.get("metrics") or {}
    row = {key: record.get(key, metrics.get(key)) for key in CSV_COLUMNS}
    duration, seconds = metrics.get("duration_s"), record.get("seconds")
    row["realtime"] = round(duration / seconds, 2) if duration and seconds and not record.get("skipped") else None
    row["skipped"] = bool(record.get("skipped"))
    return row


def summary_csv(records: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: ("" if v is None else v) for k, v in _row(record).items()})
    return out.getvalue()


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def report_markdown(records: list[dict], batch: dict, root: Path) -> str:
    counts = batch.get("counts", {})
    lines = [f"# Reel2Rig batch: {len(records)} clips", "",
             f"{counts.get('ok', 0)} converted ({counts.get('skipped', 0)} of them finished before and skipped), "
             f"{counts.get('failed', 0)} failed, {counts.get('cancelled', 0)} cancelled, "
             f"{counts.get('pending', 0)} not run. "
             f"Backend: {batch.get('backend')}, {batch.get('workers')} worker(s), {batch.get('seconds', 0):.0f} s.", ""]
    settings = batch.get("settings", {})
    lines += [f"Rig: `{settings.get('rig') or 'Reel2Rig Anny armature'}`, map `{settings.get('bone_map')}`, "
              f"formats {', '.join(settings.get('formats', []))}.", ""]
    failed = [r for r in records if r.get("status") not in ("ok",)]
    if failed:
        lines += ["## Needs attention", "", "| clip | status | step | what happened | fix |", "|---|---|---|---|---|"]
        for r in failed:
            lines.append(f"| {_md(r['name'])} | {r.get('status', 'pending')} | {_md(r.get('stage', ''))} | "
                         f"{_md(r.get('error', ''))} | {_md(r.get('fix', ''))} |")
        lines.append("")
    lines += ["## Clips", "", "| overlay | clip | frames | time | person / hands L / R | residual | jitter | notes |",
              "|---|---|---|---|---|---|---|---|"]
    for r in records:
        m = r.get("metrics") or {}
        thumb = root / r["name"] / "thumb.jpg"
        picture = f"![{_md(r['name'])}]({r['name']}/thumb.jpg)" if thumb.is_file() else "–"
        if r.get("status") == "ok":
            hands = f"{m.get('person_pct', '–')} / {m.get('left_hand_pct', '–')} / {m.get('right_hand_pct', '–')} %"
            note = "skipped (finished before)" if r.get("skipped") else f"map {r.get('map_id') or 'own armature'}"
            if r.get("warnings"):
                note += "; " + "; ".join(r["warnings"])[:200]
            lines.append(f"| {picture} | {_md(r['name'])} | {m.get('frames', '–')} | {r.get('seconds', 0):.1f} s | "
                         f"{hands} | {m.get('residual_px_median', '–')} px | {m.get('jitter_mm_per_frame2', '–')} "
                         f"mm/f² | {_md(note)} |")
        else:
            lines.append(f"| {picture} | {_md(r['name'])} | – | {r.get('seconds', 0) or 0:.1f} s | – | – | – | "
                         f"{r.get('status', 'pending')}: {_md(r.get('error', ''))[:200]} |")
    lines += ["", "Residual: median distance in the picture between the fitted joints and the detected landmarks. "
              "Jitter: mean acceleration of the joints (lower is smoother). Full figures: batch_summary.csv / .json."]
    return "\n".join(lines) + "\n"
