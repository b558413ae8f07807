"""First-run downloads say how far they are: DownloadMeter reads Maven's transfer lines (captured from a
real `mvn -B dependency:copy` run) and the size of the `<file>.part` Maven writes while a file is in
flight; run_with_progress prints bytes so far and the rate every few seconds while a command runs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from marketpipe.infra.artifacts import DownloadMeter, describe_bytes, run_with_progress

CENTRAL = "https://repo.maven.apache.org/maven2"
ARCHIVE = "io/apicurio/apicurio-registry-app/3.3.3/apicurio-registry-app-3.3.3-all.tar.gz"
# verbatim lines of Maven 3.8.7 (batch mode), colour codes included
REAL_LINES = [
    f"[INFO] Downloading from central: {CENTRAL}/org/apache/maven/plugins/maven-clean-plugin/2.5/maven-clean-plugin-2.5.pom",
    f"[INFO] Downloaded from central: {CENTRAL}/org/apache/maven/plugins/maven-clean-plugin/2.5/maven-clean-plugin-2.5.pom (3.9 kB at 7.8 kB/s)",
    f"\x1b[0m\x1b[0m[INFO] Downloading from central: {CENTRAL}/{ARCHIVE}",
    f"[INFO] Downloaded from central: {CENTRAL}/{ARCHIVE} (159 MB at 13 MB/s)",
]


def test_finished_transfers_are_summed_from_mavens_lines(tmp_path: Path) -> None:
    meter = DownloadMeter(tmp_path)
    for line in REAL_LINES:
        meter.feed(line)
    assert meter.files_done == 2
    assert meter.done_bytes == 3_900 + 159_000_000
    assert meter.bytes_so_far() == meter.done_bytes


def test_a_file_in_flight_counts_by_its_part_file_in_the_local_repository(tmp_path: Path) -> None:
    meter = DownloadMeter(tmp_path)
    meter.feed(REAL_LINES[2])
    assert meter.bytes_so_far() == 0  # Maven has not made the folder yet
    folder = tmp_path / Path(ARCHIVE).parent
    folder.mkdir(parents=True)
    part = folder / (Path(ARCHIVE).name + ".part")
    part.write_bytes(b"x" * 12_345)
    assert meter.bytes_so_far() == 12_345
    part.write_bytes(b"x" * 54_321)
    assert meter.bytes_so_far() == 54_321
    meter.feed(REAL_LINES[3])  # finished: counted once, by its reported size (no longer by its file)
    assert meter.files_done == 1 and meter.bytes_so_far() == 159_000_000


def test_periodic_lines_carry_bytes_so_far_and_rate(tmp_path: Path) -> None:
    """A command printing Maven's transfer lines over ~4 s: progress lines every 0.5 s with the bytes."""
    script = (
        "import sys, time\n"
        f"lines = {REAL_LINES!r}\n"
        "for line in lines:\n"
        "    print(line, flush=True)\n"
        "    time.sleep(1.0)\n"
    )
    said: list[tuple[float, str]] = []
    rc = run_with_progress([sys.executable, "-c", script], tmp_path, tmp_path / "fetch.log", "Apicurio",
                           lambda m: said.append((time.monotonic(), m)), DownloadMeter(tmp_path), every=0.5)
    assert rc == 0
    periodic = [m for _, m in said if "so far" in m]
    assert len(periodic) >= 3, said
    assert all("/s" in m for m in periodic)
    assert any(describe_bytes(159_003_900) in m for m in periodic + [said[-1][1]])
    assert "in 2 files" in said[-1][1] and describe_bytes(159_003_900) in said[-1][1]
    assert (tmp_path / "fetch.log").read_text().count("Downloaded from central") == 2
