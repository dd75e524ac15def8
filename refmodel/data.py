"""Training samples streamed straight from the Parquet frame shards.

A sample is a window of ``window`` consecutive face frames ``f .. f+window-1`` of one clip:

- ``target``     (T, 3, S, S) uint8 — the aligned face crops resized to ``image_size``
- ``masked``     (T, 3, S, S) uint8 — the same with the mouth region (lower half, rows >= S/2) zeroed
- ``mouth``      (T, 3, S/2, S) uint8 — the lower halves: the mouth window the sync expert sees
- ``reference``  (3, S, S) uint8 — another frame of the same clip, at least ``min_ref_gap`` frames away
                 from every frame of the window
- ``mel``        (T, 80, 16) float32 — ``prep.audio.mel_window(mel, f + t)`` for each frame (Wav2Lip
                 rule); ``mel[0]`` is also the window paired with the 5-frame mouth window (SyncNet rule)
- ``neg_mel``/``neg_offset`` (K, 80, 16) / (K,) — optional offset negatives for the sync expert
- ``clip_id``, ``frame_index`` (= f), ``ref_index``

Order and splitting. The unit of streaming is a shard file, or a row group when there are fewer shard
files than readers (DataLoader workers × DDP ranks). Each epoch the units are permuted with
``(seed, epoch)`` and dealt round-robin to the readers, so readers never overlap within an epoch.
Within a reader, candidate windows pass through a shuffle buffer driven by ``(seed, epoch, reader)``.
References and windows are taken from the same row group (shards are written in clip order, so a row
group holds long runs of one clip); windows that would straddle a row-group boundary are skipped.

Crops are decoded with JPEG DCT scaling straight to ``image_size`` (PIL ``draft``) and the decoded row
group is cached (LRU, bounded bytes), so decoding is never the training bottleneck.
"""
from __future__ import annotations

import io
import logging
import math
from collections import OrderedDict

import numpy as np
import torch
import torch.utils.data as tud

from prep.output import Clip, PrepOutput
from talkbase.timebase import MEL_WINDOW

log = logging.getLogger(__name__)

MEL_STEPS = MEL_WINDOW  # mel steps per frame's window (Wav2Lip rule)


_CV2_REDUCED = {1: "IMREAD_COLOR", 2: "IMREAD_REDUCED_COLOR_2", 4: "IMREAD_REDUCED_COLOR_4",
                8: "IMREAD_REDUCED_COLOR_8"}


def load_crop(data: bytes, size: int, src_size: int | None = None) -> np.ndarray:
    """Encoded crop bytes → (size, size, 3) uint8 RGB.

    JPEG crops whose side ``src_size`` is known are decoded at 1/2, 1/4 or 1/8 scale in the DCT domain
    (libjpeg-turbo via OpenCV; identical to PIL's ``draft``), several times faster than a full decode.
    """
    if src_size and data[:2] == b"\xff\xd8":
        import cv2

        factor = max(f for f in _CV2_REDUCED if src_size % f == 0 and src_size // f >= size)
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), getattr(cv2, _CV2_REDUCED[factor]))
        if bgr is not None:
            if bgr.shape[0] != size or bgr.shape[1] != size:
                bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
            return np.ascontiguousarray(bgr[:, :, ::-1])
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if im.format == "JPEG":
            im.draft("RGB", (size, size))  # DCT-domain downscale
        rgb = im.convert("RGB")
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BOX if rgb.size[0] > size else Image.Resampling.BILINEAR)
        return np.asarray(rgb)


def mouth_rows(size: int) -> slice:
    """Rows of the square crop that the model inpaints (the lower half, Diff2Lip's mask)."""
    return slice(size // 2, size)


def lower_half_mask(size: int) -> np.ndarray:
    """(size, size) float32: 1 on the inpainted lower half, 0 elsewhere."""
    m = np.zeros((size, size), np.float32)
    m[mouth_rows(size)] = 1.0
    return m


def holdout_start(num_frames: int, holdout_fraction: float) -> int:
    """First held-out frame of a clip: the last ``holdout_fraction`` of its frames are held out."""
    if holdout_fraction <= 0:
        return num_frames
    return num_frames - max(1, int(round(num_frames * holdout_fraction)))


def frame_range(num_frames: int, subset: str, holdout_fraction: float) -> tuple[int, int]:
    """[lo, hi) of target frames for ``subset`` (``all``, ``train`` or ``holdout``)."""
    cut = holdout_start(num_frames, holdout_fraction)
    if subset == "all":
        return 0, num_frames
    if subset == "train":
        return 0, cut
    if subset == "holdout":
        return cut, num_frames
    raise ValueError(f"unknown frame subset {subset!r} (all, train, holdout)")


def open_prep(prep_out) -> PrepOutput:
    """A prep output folder (or an already opened :class:`~prep.output.PrepOutput`)."""
    return prep_out if isinstance(prep_out, PrepOutput) else PrepOutput.open(prep_out)


def read_clip_meta(prep_out, split: str | None = None, clip_ids=None) -> dict[str, Clip]:
    """Clip id → its :class:`~prep.output.Clip` (with ``mel``), sorted by id; clips without audio are left
    out. Optionally only the clips table's ``split`` / ``clip_ids``."""
    clips = open_prep(prep_out).clips(split=split, audio=True, clip_ids=clip_ids)
    return {c.clip_id: c for c in clips if c.mel is not None}


def _read_row_group(path, index: int, columns: list[str]):
    """Row group ``index`` of one frame shard (the dataset's unit of random access)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).read_row_group(index, columns=columns)


def mel_windows(mel: np.ndarray, frames) -> np.ndarray | None:
    """(len(frames), 80, 16) windows by ``prep.audio.mel_window``; None if any runs past the clip."""
    from prep.audio import mel_window

    out = []
    for f in frames:
        w = mel_window(mel, int(f))
        if w is None:
            return None
        out.append(w)
    return np.stack(out)


def assign_units(row_groups: list[int], num_parts: int, part: int, seed: int, epoch: int,
                 shuffle: bool = True) -> list[tuple[int, int]]:
    """(file, row group) pairs read by reader ``part`` of ``num_parts`` in ``epoch``.

    Whole files are dealt when there are at least ``num_parts`` files, else single row groups.
    Readers get disjoint sets whose union is everything.
    """
    if len(row_groups) >= num_parts:
        units = [[(f, g) for g in range(n)] for f, n in enumerate(row_groups)]
    else:
        units = [[(f, g)] for f, n in enumerate(row_groups) for g in range(n)]
    order = (np.random.default_rng([seed, epoch]).permutation(len(units)) if shuffle
             else np.arange(len(units)))
    return [fg for i in order[part::num_parts] for fg in units[i]]


class _Unit:
    """One row group: face-row metadata, crop bytes, decoded images on first use."""

    __slots__ = ("key", "clip_ids", "frames", "crops", "images")

    def __init__(self, key, clip_ids, frames, crops):
        self.key, self.clip_ids, self.frames, self.crops, self.images = key, clip_ids, frames, crops, None


def _reader_identity(rank, world_size):
    """(reader index, number of readers, worker id, workers per rank) of the calling process."""
    if rank is None or world_size is None:
        try:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                rank, world_size = dist.get_rank(), dist.get_world_size()
        except ImportError:  # pragma: no cover
            pass
    rank, world_size = rank or 0, world_size or 1
    info = tud.get_worker_info()
    wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
    return rank * nw + wid, world_size * nw, wid, nw


class ShardFrameDataset(tud.IterableDataset):
    """Stream training windows from a prep output (see the module docstring for the sample layout).

    Args:
        prep_out: prep output directory (``manifest.json``, ``clips/``, ``frames/``) or its
            :class:`~prep.output.PrepOutput`.
        split: keep only clips whose ``split`` column equals this (None: all clips).
        image_size: crop side after resizing.
        seed: base seed; with the epoch it fixes unit order, buffer order and reference choice.
        shuffle_buffer: candidate windows held for shuffling (0 or 1: stream order).
        min_ref_gap: reference at least this many frames from every frame of the window.
        window: consecutive frames per sample (5 for the sync expert / sync loss; 1 for single frames).
        frames: ``all``, ``train`` (targets and references before each clip's held-out tail) or
            ``holdout`` (targets in the tail; references anywhere in the clip).
        holdout_fraction: size of each clip's held-out tail.
        num_offset_negatives: K offset-negative mel windows per sample (sync expert training).
        max_offset / min_negative_offset: offsets (frames) those negatives are drawn from.
        batch_size: yield collated batches of this many samples instead of single samples.
        infinite: loop over epochs forever (epoch = ``self.epoch``, ``self.epoch + 1``, ...).
        start_batch: skip this many batches of the global stream (exact resume; see ``skip_for``).
        rank / world_size: DDP position (default: from ``torch.distributed`` when initialised).
        cache_bytes: bytes of decoded row groups kept between epochs.
    """

    def __init__(self, prep_out, split: str | None = None, image_size: int = 64, seed: int = 0,
                 shuffle_buffer: int = 512, min_ref_gap: int = 5, window: int = 5, frames: str = "all",
                 holdout_fraction: float = 0.0, num_offset_negatives: int = 0, max_offset: int = 15,
                 min_negative_offset: int = 2, batch_size: int | None = None, infinite: bool = False,
                 start_batch: int = 0, clip_ids=None, rank: int | None = None,
                 world_size: int | None = None, shuffle: bool = True, cache_bytes: int = 256 << 20):
        super().__init__()
        import pyarrow.parquet as pq

        self.prep = open_prep(prep_out)
        self.prep_out = self.prep.path
        self.files = self.prep.shard_files("frames")
        if not self.files:
            raise FileNotFoundError(f"{prep_out}: no frame shards")
        self.row_groups = [pq.ParquetFile(f).metadata.num_row_groups for f in self.files]
        self.clips = read_clip_meta(self.prep, split, set(clip_ids) if clip_ids is not None else None)
        if not self.clips:
            raise ValueError(f"{prep_out}: no clips with audio" + (f" in split {split!r}" if split else ""))
        frame_range(1, frames, holdout_fraction)  # validates ``frames``
        self.image_size, self.seed, self.shuffle_buffer = image_size, seed, shuffle_buffer
        self.min_ref_gap, self.window, self.frames = min_ref_gap, window, frames
        self.holdout_fraction = holdout_fraction
        self.num_offset_negatives, self.max_offset = num_offset_negatives, max_offset
        self.min_negative_offset = min_negative_offset
        self.batch_size, self.infinite, self.start_batch = batch_size, infinite, start_batch
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.cache_bytes = cache_bytes
        self.epoch = 0
        self._cache: OrderedDict = OrderedDict()
        self._cached = 0

    def set_epoch(self, epoch: int) -> None:
        """Epoch of the next iteration (like ``DistributedSampler.set_epoch``)."""
        self.epoch = int(epoch)

    # ------------------------------------------------------------ candidates
    def _load_unit(self, f: int, g: int) -> _Unit | None:
        batch = _read_row_group(self.files[f], g, ["clip_id", "frame_index", "face_found", "crop"])
        ok = np.asarray(batch.column("face_found").to_numpy(zero_copy_only=False), bool)
        ok &= ~np.asarray(batch.column("crop").is_null().to_numpy(zero_copy_only=False), bool)
        clip_ids = np.asarray(batch.column("clip_id").to_pylist(), dtype=object)
        frames = batch.column("frame_index").to_numpy().astype(np.int64)
        keep = ok & np.isin(clip_ids, list(self.clips))
        if not keep.any():
            return None
        idx = np.flatnonzero(keep)
        crops = batch.column("crop").take(idx)
        return _Unit((f, g), clip_ids[idx], frames[idx], crops)

    def _candidates(self, unit: _Unit, rng: np.random.Generator) -> list[tuple]:
        """(unit, rows of the window, reference row, clip, start frame, ref frame, negatives) tuples."""
        T, gap = self.window, self.min_ref_gap
        out = []
        for clip in dict.fromkeys(unit.clip_ids):  # first-appearance order: deterministic
            meta = self.clips[clip]
            rows = np.flatnonzero(unit.clip_ids == clip)
            fr = unit.frames[rows]
            order = np.argsort(fr, kind="stable")
            rows, fr = rows[order], fr[order]
            row_of = dict(zip(fr.tolist(), rows.tolist()))
            lo, hi = frame_range(meta.num_frames, self.frames, self.holdout_fraction)
            n_mel = meta.mel.shape[1]
            from prep.audio import mel_start

            if self.frames == "train":
                ref_frames = fr[(fr >= lo) & (fr < hi)]
            else:
                ref_frames = fr
            for f in fr.tolist():
                last = f + T - 1
                if f < lo or last >= hi or mel_start(last) + MEL_STEPS > n_mel:
                    continue
                if any((f + t) not in row_of for t in range(1, T)):
                    continue
                n_before = np.searchsorted(ref_frames, f - gap, side="right")
                n_after = len(ref_frames) - np.searchsorted(ref_frames, last + gap, side="left")
                if n_before + n_after == 0:
                    continue
                k = int(rng.integers(n_before + n_after))
                ref = int(ref_frames[k] if k < n_before else ref_frames[len(ref_frames) - n_after + k - n_before])
                negs = None
                if self.num_offset_negatives:
                    negs = self._offsets(f, n_mel, lo, hi, rng)
                    if not len(negs):
                        continue
                out.append((unit, [row_of[f + t] for t in range(T)], row_of[ref], clip, f, ref, negs))
        if self.shuffle and len(out) > 1:
            out = [out[i] for i in rng.permutation(len(out))]
        return out

    def _offsets(self, f: int, n_mel: int, lo: int, hi: int, rng) -> np.ndarray:
        """K offsets d (frames), min_negative_offset <= |d| <= max_offset, whose shifted window stays in
        the subset's frames [lo, hi) (no held-out audio in training) and has a full mel window."""
        from prep.audio import mel_start

        valid = [d for d in range(-self.max_offset, self.max_offset + 1)
                 if abs(d) >= self.min_negative_offset and lo <= f + d and f + d + self.window - 1 < hi
                 and mel_start(f + d) + MEL_STEPS <= n_mel]
        if not valid:
            return np.zeros(0, np.int64)
        return np.asarray(rng.choice(valid, size=self.num_offset_negatives,
                                     replace=len(valid) < self.num_offset_negatives), np.int64)

    # ------------------------------------------------------------ decoding
    def _images(self, unit: _Unit) -> np.ndarray:
        if unit.images is not None:
            return unit.images
        cached = self._cache.get(unit.key)
        if cached is not None:
            self._cache.move_to_end(unit.key)
            unit.images = cached
            return cached
        s = self.image_size
        imgs = np.empty((len(unit.crops), 3, s, s), np.uint8)
        for i, (b, clip) in enumerate(zip(unit.crops.to_pylist(), unit.clip_ids)):
            imgs[i] = load_crop(b, s, self.clips[clip].crop_size).transpose(2, 0, 1)
        unit.images = imgs
        if self.cache_bytes > 0 and imgs.nbytes <= self.cache_bytes:
            self._cache[unit.key] = imgs
            self._cached += imgs.nbytes
            while self._cached > self.cache_bytes:
                _, old = self._cache.popitem(last=False)
                self._cached -= old.nbytes
        return imgs

    def _materialize(self, cand) -> dict:
        unit, rows, ref_row, clip, f, ref, negs = cand
        imgs = self._images(unit)
        target = imgs[rows]
        masked = target.copy()
        masked[:, :, mouth_rows(self.image_size)] = 0
        mel = self.clips[clip].mel
        sample = {
            "target": torch.from_numpy(target),
            "masked": torch.from_numpy(masked),
            "reference": torch.from_numpy(imgs[ref_row].copy()),
            "mel": torch.from_numpy(mel_windows(mel, range(f, f + self.window))),
            "clip_id": clip, "frame_index": f, "ref_index": ref,
        }
        sample["mouth"] = sample["target"][:, :, mouth_rows(self.image_size)]
        if negs is not None:
            sample["neg_mel"] = torch.from_numpy(mel_windows(mel, f + negs) if len(negs) else
                                                 np.zeros((0, 80, MEL_STEPS), np.float32))
            sample["neg_offset"] = torch.from_numpy(negs)
        return sample

    # ------------------------------------------------------------ iteration
    def _epoch_candidates(self, epoch: int, part: int, parts: int):
        rng = np.random.default_rng([self.seed, epoch, part])
        units = assign_units(self.row_groups, parts, part, self.seed, epoch, self.shuffle)
        buf: list = []
        size = max(1, self.shuffle_buffer) if self.shuffle else 1
        for f, g in units:
            unit = self._load_unit(f, g)
            if unit is None:
                continue
            for cand in self._candidates(unit, rng):
                if len(buf) < size:
                    buf.append(cand)
                    continue
                j = int(rng.integers(size))
                out, buf[j] = buf[j], cand
                yield out
        if self.shuffle and len(buf) > 1:
            buf = [buf[i] for i in rng.permutation(len(buf))]
        yield from buf

    def skip_for(self, worker: int, num_workers: int) -> int:
        """Batches (or samples) this DataLoader worker skips so the global stream starts at
        ``start_batch``: the loader takes batch k from worker k % num_workers."""
        return max(0, math.ceil((self.start_batch - worker) / num_workers))

    def __iter__(self):
        part, parts, wid, nw = _reader_identity(self.rank, self.world_size)
        if sum(self.row_groups) < parts:
            log.warning("%d row groups for %d readers: some readers get no data", sum(self.row_groups), parts)
        skip = self.skip_for(wid, nw)
        epoch = self.epoch
        group: list = []
        while True:
            produced = False
            for cand in self._epoch_candidates(epoch, part, parts):
                produced = True
                if self.batch_size is None:
                    if skip:
                        skip -= 1
                        continue
                    yield self._materialize(cand)
                    continue
                group.append(cand)
                if len(group) == self.batch_size:
                    if skip:
                        skip -= 1
                    else:
                        yield collate([self._materialize(c) for c in group])
                    group = []
            if not self.infinite or not produced:
                break
            epoch += 1
        if group and not self.infinite:  # the last partial batch of a finite pass
            if not skip:
                yield collate([self._materialize(c) for c in group])


def collate(samples: list[dict]) -> dict:
    """Stack samples into a batch (tensors stacked, strings and ints listed/tensored)."""
    out = {}
    for k in samples[0]:
        if k == "mouth" and "target" in samples[0]:
            continue  # a view of the stacked targets (below): no copy, and shared as one storage
        vals = [s[k] for s in samples]
        if isinstance(vals[0], torch.Tensor):
            # numpy's stack: torch.stack of small uint8 tensors can stall on busy intra-op threads
            out[k] = torch.from_numpy(np.stack([v.numpy() for v in vals]))
        elif isinstance(vals[0], (int, np.integer)):
            out[k] = torch.tensor(vals, dtype=torch.int64)
        else:
            out[k] = vals
    if "mouth" in samples[0] and "target" in out:
        h = out["target"].shape[-2]
        out["mouth"] = out["target"][..., mouth_rows(h), :]
    return out


def make_loader(dataset: ShardFrameDataset, num_workers: int = 0, batch_size: int | None = None):
    """A DataLoader over the dataset. A batched dataset (``batch_size`` set on it) batches itself and
    the loader only parallelises; otherwise the loader batches ``batch_size`` samples with ``collate``."""
    if dataset.batch_size:
        return tud.DataLoader(dataset, batch_size=None, num_workers=num_workers)
    return tud.DataLoader(dataset, batch_size=batch_size or 1, num_workers=num_workers, collate_fn=collate)


__all__ = ["ShardFrameDataset", "load_crop", "lower_half_mask", "mouth_rows", "holdout_start", "frame_range",
           "read_clip_meta", "open_prep", "mel_windows", "assign_units", "collate", "make_loader"]
