"""The image checks of a streamed split (tfds, TFRecord files), run by `tltk data shard` on
each record as it writes it: a run never decodes a streamed image before training, so the
shard writer, which holds every image's bytes once anyway, is where they are checked.

The checks are the folder ones (tltk/data/image_checks.py): an image Pillow cannot fully
decode is corrupt (dropped and reported, or refused under `clean.corrupt: error`); one
TensorFlow would misread is converted to an RGB PNG, which the shard holds instead.
"""

from __future__ import annotations

from tltk.data.errors import DataError
from tltk.data.image_checks import check_file, to_rgb_png
from tltk.recipe import CleanConfig

CHECKED_BY = "tltk data shard: every streamed image fully decoded (Pillow) as it was written"


class StreamImageCheck:
    """`check(raw, origin)` -> the bytes to write, or None for a corrupt image (reported)."""

    def __init__(self, policy: CleanConfig):
        self.policy = policy
        self.corrupt: list[dict] = []
        self.converted: list[dict] = []
        self.kept: list[int] = []
        """Positions (in the order written) of the records that were written."""

    def __call__(self, raw: bytes, origin: str, position: int) -> bytes | None:
        check = check_file(raw)
        if not check.error and check.convert:
            try:
                png = to_rgb_png(raw)
            except Exception as e:  # a mode Pillow reads but cannot convert: unusable
                check.error = f"cannot convert ({check.convert}): {type(e).__name__}: {e}"
            else:
                self.converted.append({"file": origin, "mode": check.kind,
                                       "why": check.convert, "to": "(in the shard)"})  # fmt: skip
                raw = png
        if check.error:
            self.corrupt.append({"file": origin, "error": check.error})
            return None
        self.kept.append(position)
        return raw

    def refuse_corrupt(self) -> None:
        """Under `clean.corrupt: error`, a DataError listing the corrupt images."""
        if not self.corrupt or self.policy.corrupt != "error":
            return
        shown = "\n  ".join(f"{c['file']}: {c['error']}" for c in self.corrupt[:10])
        raise DataError(
            f"{len(self.corrupt)} undecodable or truncated image(s) in the stream:\n  {shown}\n"
            "Fix the source, or set data.clean.corrupt: drop to leave them out of the shards."
        )


def record_stream_checks(report: dict, checks: dict[str, StreamImageCheck]) -> None:
    """Put what the checks of streamed splits found into the data report: the corrupt and
    converted images, and how those splits were checked."""
    for check in checks.values():
        report["corrupt"] = [*report.get("corrupt", []), *check.corrupt]
        report["converted"] = [*report.get("converted", []), *check.converted]
    if checks:
        report["inspection"] = {"trusted": False, "splits": sorted(checks),
                                "checked_by": CHECKED_BY}  # fmt: skip
