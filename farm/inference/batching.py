"""One model, many jobs: a dispatcher thread that packs and batches across jobs.

A worker process runs ``concurrency`` job threads (Celery's threads pool). Each hands
its audio to the ``Batcher`` and waits; the dispatcher thread collects what arrives
within ``batch_wait_ms`` (or until every job thread has handed something in), packs
short clips with the same options into shared windows, runs the engine, and gives each
job its own transcript back. Long clips and options that cannot share a window run on
their own. Only the dispatcher touches the engine, so a model is never used by two
threads at once.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import queue
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TypeVar

from farm.errors import JobTimeoutError, ResourceExhaustedError
from farm.inference import heap, packing, vad
from farm.inference.engines.base import Engine, Progress, ProgressCallback
from farm.inference.signal import SAMPLE_RATE, Audio
from farm.job.transcript import TranscribeOptions, Transcript

log = logging.getLogger(__name__)
_Item = TypeVar("_Item")
ONE_WINDOW_S = 30.0  # what Whisper's encoder takes in one window


@dataclass(frozen=True)
class BatchPolicy:
    """How the dispatcher groups work; see settings.toml for each knob."""

    max_jobs: int = 4  # jobs gathered per round: the worker's concurrency
    batch_size: int = 1  # windows per engine call (GPUs gain from more; CPUs do not)
    wait_s: float = 0.05
    pack: bool = True
    window_s: float = packing.WINDOW_S
    max_batch_audio_s: float = 0.0  # audio per engine call; over it counts as out of memory (0: no limit)


@dataclass
class _Request:
    audio: Audio
    options: TranscribeOptions
    on_progress: ProgressCallback | None
    future: Future[Transcript]
    abandoned: threading.Event = field(default_factory=threading.Event)  # its job gave up waiting

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


class Direct:
    """One job, one engine call: what each child of a prefork pool does."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def job(self) -> Iterator[None]:
        yield

    def transcribe(
        self,
        audio: Audio,
        options: TranscribeOptions,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> Transcript:
        # Celery's own soft/hard time limits apply in a prefork child.
        return self.engine.transcribe([audio], options, on_progress)[0]


class Batcher:
    """Serialises engine use and packs jobs that arrive close together."""

    def __init__(self, engine: Engine, policy: BatchPolicy, multilingual: bool) -> None:
        self.engine = engine
        self.policy = policy
        self.multilingual = multilingual
        self._inbox: queue.Queue[_Request] = queue.Queue()
        self._expected = 0  # jobs started whose audio has not reached the inbox yet
        self._expected_lock = threading.Lock()
        self._local = threading.local()
        self._thread = threading.Thread(target=self._serve, name="farm-batcher", daemon=True)
        self._thread.start()

    @contextmanager
    def job(self) -> Iterator[None]:
        """Mark a job as on its way (decoding audio), so the dispatcher waits for it."""
        self._count_expected(+1)
        self._local.expected = True
        try:
            yield
        finally:
            self._arrived()

    def _arrived(self) -> None:
        if getattr(self._local, "expected", False):
            self._local.expected = False
            self._count_expected(-1)

    def _count_expected(self, delta: int) -> None:
        with self._expected_lock:
            self._expected += delta

    def transcribe(
        self,
        audio: Audio,
        options: TranscribeOptions,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> Transcript:
        """Block until this clip's transcript is ready (or ``timeout`` seconds pass)."""
        request = _Request(audio, options, on_progress, Future())
        self._inbox.put(request)
        self._arrived()  # after the put, so the dispatcher never sees neither
        try:
            return request.future.result(timeout)
        except TimeoutError:
            request.abandoned.set()  # stops the engine at its next segment if already running
            request.future.cancel()
            raise JobTimeoutError(f"timed out: no transcript within {timeout:.0f} s") from None

    def _serve(self) -> None:
        if self.policy.pack:
            self._warm_vad()
        while True:
            self._run(self._gather())
            heap.release_freed_memory()

    @staticmethod
    def _warm_vad() -> None:
        # Packed clips' coverage checks need it: loaded before any job waits on it.
        try:
            vad.warm()
        except Exception:
            log.exception("could not load the VAD model; packed clips will be run alone when in doubt")

    def _gather(self) -> list[_Request]:
        batch = [self._inbox.get()]
        deadline = time.monotonic() + self.policy.wait_s
        while len(batch) < self.policy.max_jobs:
            waiting = self._take_waiting()
            if waiting is not None:
                batch.append(waiting)
                continue
            # Wait only while other jobs are still decoding their audio: a lone job runs
            # at once instead of paying batch_wait_ms of added latency.
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._expected <= 0:
                break
            try:
                batch.append(self._inbox.get(timeout=min(remaining, 0.005)))
            except queue.Empty:
                continue
        return [r for r in batch if r.future.set_running_or_notify_cancel()]

    def _take_waiting(self) -> _Request | None:
        try:
            return self._inbox.get_nowait()
        except queue.Empty:
            return None

    def _run(self, batch: list[_Request]) -> None:
        groups: dict[TranscribeOptions, list[_Request]] = {}
        singles: dict[TranscribeOptions, list[_Request]] = {}
        for request in self._without_copies(batch):
            if self._packable(request):
                groups.setdefault(_pack_key(request.options), []).append(request)
            else:
                self._single(singles, request)
        for options, members in groups.items():
            if len(members) == 1:
                # Nothing to share the window with: word timings would cost ~10 % more for
                # nothing, and the job keeps its own options.
                self._single(singles, members[0])
            else:
                self._packed(options, members)
        for options, members in singles.items():
            for chunk in _chunks(members, self.policy.batch_size):
                self._together(options, chunk)

    def _single(self, singles: dict[TranscribeOptions, list[_Request]], request: _Request) -> None:
        """A clip that fills one encoder window on its own waits for others with its options
        (one engine call for them all, on a GPU the gain of batching); longer ones run alone."""
        if request.seconds <= ONE_WINDOW_S and not request.options.vad_filter:
            singles.setdefault(request.options, []).append(request)
        else:
            self._alone(request)

    def _without_copies(self, batch: list[_Request]) -> list[_Request]:
        """Transcribe identical short clips with identical options once per round.

        Copies of one clip packed into one window would run together into text Whisper
        merges or drops, failing every copy's repetition check; one decode serves all.
        """
        if len(batch) < 2:
            return batch  # nothing to compare: no hashing on a lone job's path
        firsts: dict[tuple[TranscribeOptions, bytes], _Request] = {}
        unique = []
        for request in batch:
            if request.seconds > self.policy.window_s:
                unique.append(request)  # hashing long audio costs more than a rare repeat saves
                continue
            first = firsts.setdefault((request.options, _fingerprint(request.audio)), request)
            if first is request:
                unique.append(request)
            else:
                first.future.add_done_callback(functools.partial(_copy_outcome, request.future))
        return unique

    def _packable(self, request: _Request) -> bool:
        options = request.options
        knows_language = options.language is not None or not self.multilingual
        return (
            self.policy.pack and knows_language and not options.vad_filter and request.seconds <= self.policy.window_s
        )

    def _alone(self, request: _Request) -> None:
        try:
            # The engine works through a long clip one window at a time.
            self._check_budget(1, min(request.seconds, self.policy.window_s))
            [transcript] = self.engine.transcribe([request.audio], request.options, _stoppable(request))
            transcript = self._completed(request, transcript)
        except Exception as exc:  # handed to the waiting job thread, which re-raises it
            request.future.set_exception(exc)
            return
        request.future.set_result(transcript)

    def _completed(self, request: _Request, transcript: Transcript) -> Transcript:
        """The clip's transcript with its speech after the last segment decoded as well.

        The engine seeks past each closed segment as faster-whisper does, yet Whisper can
        still end a decode before the clip's end: on 2 of the 50 LibriSpeech test clips
        (tiny.en, beam 5) faster-whisper's own decode, and the engine's, stop mid-sentence
        with 2-3 s of the clip left. When VAD hears over a second of speech after the last
        word, that stretch is decoded on its own and appended, a few times at most.
        """
        for _ in range(MAX_CONTINUATIONS):
            heard = _heard_until(transcript)
            if request.seconds > ONE_WINDOW_S or not _cut_short(request, transcript, heard):
                return transcript
            [rest] = self.engine.transcribe([request.audio[int(heard * SAMPLE_RATE) :]], request.options)
            if not rest.segments:
                return transcript
            transcript = _appended(transcript, rest, heard)
        return transcript

    def _packed(self, options: TranscribeOptions, members: list[_Request]) -> None:
        windows = packing.pack([m.audio for m in members], self.policy.window_s)
        for chunk in _chunks(windows, self.policy.batch_size):
            self._chunk(options, members, chunk)

    def _together(self, options: TranscribeOptions, requests: Sequence[_Request]) -> None:
        """Clips of one window each, with the same options, in one engine call."""
        if len(requests) == 1:
            self._alone(requests[0])
            return
        try:
            self._check_budget(len(requests), sum(r.seconds for r in requests))
            transcripts = self.engine.transcribe([r.audio for r in requests], options)
        except ResourceExhaustedError as exc:
            half = (len(requests) + 1) // 2
            log.warning("%s; retrying the batch of %d clips as %d + %d", exc, len(requests), half, len(requests) - half)
            self._together(options, requests[:half])
            self._together(options, requests[half:])
            return
        except Exception as exc:
            for request in requests:
                request.future.set_exception(exc)
            return
        for request, transcript in zip(requests, transcripts, strict=True):
            try:
                request.future.set_result(self._completed(request, transcript))
            except Exception as exc:
                request.future.set_exception(exc)

    def _chunk(self, options: TranscribeOptions, members: list[_Request], chunk: Sequence[packing.Window]) -> None:
        try:
            transcripts = self._engine_call(options, chunk)
        except ResourceExhaustedError as exc:
            if len(chunk) == 1:  # nothing left to halve: the job's retry may land on a freer device
                _fail(members, chunk, exc)
                return
            half = (len(chunk) + 1) // 2
            log.warning("%s; retrying the batch of %d windows as %d + %d", exc, len(chunk), half, len(chunk) - half)
            self._chunk(options, members, chunk[:half])
            self._chunk(options, members, chunk[half:])
            return
        except Exception as exc:
            _fail(members, chunk, exc)
            return
        for window, transcript in zip(chunk, transcripts, strict=True):
            doubtful = packing.doubtful(window, transcript)
            for index, piece in packing.split(window, transcript).items():
                self._settle(members[index], piece, trusted=index not in doubtful)

    def _settle(self, member: _Request, piece: Transcript, trusted: bool) -> None:
        if trusted and _sound(member, piece):
            member.future.set_result(piece)
        else:
            self._alone(member)

    def _engine_call(self, options: TranscribeOptions, chunk: Sequence[packing.Window]) -> list[Transcript]:
        self._check_budget(len(chunk), sum(len(w.audio) for w in chunk) / SAMPLE_RATE)
        return self.engine.transcribe([w.audio for w in chunk], options)

    def _check_budget(self, windows: int, seconds: float) -> None:
        limit = self.policy.max_batch_audio_s
        if limit and seconds > limit:
            # Refused before the device is touched, along the same path a CUDA OOM takes.
            raise ResourceExhaustedError(
                f"out of memory: a batch of {windows} windows ({seconds:.0f} s of audio) "
                f"is over max_batch_audio_s ({limit:g} s)"
            )


def _stoppable(request: _Request) -> ProgressCallback:
    """The job's progress callback, raising once the job is abandoned.

    The engines report after each decoded segment; raising there frees the model for the
    jobs queued behind instead of finishing a long file nobody waits for.
    """

    def report(progress: Progress) -> None:
        if request.abandoned.is_set():
            raise JobTimeoutError("abandoned: the job stopped waiting for its transcript")
        if request.on_progress is not None:
            request.on_progress(progress)

    return report


def _sound(member: _Request, piece: Transcript) -> bool:
    """Whether a packed clip's text can be kept: no loop in it, and its speech covered.

    The repetition checks run per job, not per window: two jobs saying the same thing
    must not look like a decoding loop (it would trigger a sampled retry).
    """
    threshold = member.options.compression_ratio_threshold
    return not _repetitive(piece, threshold) and not _says_twice(piece) and _covered(member, piece)


def _says_twice(piece: Transcript) -> bool:
    phrase = packing.repeated_phrase(piece)
    if phrase is None:
        return False
    log.info("a packed clip says %r twice in a row (%d words): running it alone", phrase, len(piece.text.split()))
    return True


def _covered(member: _Request, piece: Transcript) -> bool:
    """Whether a packed clip's words cover its speech (a cut clip is run alone).

    Most clips' words leave no second unheard, and those pay no VAD pass.
    """
    if not packing.may_be_cut(piece):
        return True
    try:
        speech = vad.speech_spans(member.audio)
    except Exception:  # the dispatcher must live on: running the clip alone is always safe
        log.exception("VAD failed on a packed clip; running it alone")
        return False
    if packing.covers(piece, speech):
        return True
    log.info(
        "a packed clip's words do not cover its speech (%.1f s, %d words): running it alone",
        piece.duration,
        len(piece.text.split()),
    )
    return False


MAX_CONTINUATIONS = 3


def _heard_until(transcript: Transcript) -> float:
    return max((segment.end for segment in transcript.segments), default=0.0)


def _cut_short(request: _Request, transcript: Transcript, heard: float) -> bool:
    """Whether over ``MAX_UNHEARD_S`` of the clip's speech (VAD) lies after its last segment."""
    if request.seconds - heard <= packing.MAX_UNHEARD_S or not vad.available():
        return False
    speech = vad.speech_spans(request.audio)
    after = sum(max(0.0, span.end - max(span.start, heard + packing.WORD_PAD_S)) for span in speech)
    return after > packing.MAX_UNHEARD_S


def _appended(first: Transcript, rest: Transcript, offset: float) -> Transcript:
    moved = [
        replace(
            segment,
            id=len(first.segments) + number,
            start=round(segment.start + offset, 3),
            end=round(segment.end + offset, 3),
            words=tuple(
                replace(w, start=round(w.start + offset, 3), end=round(w.end + offset, 3)) for w in segment.words
            ),
        )
        for number, segment in enumerate(rest.segments)
    ]
    return replace(first, segments=(*first.segments, *moved))


def _fail(members: list[_Request], chunk: Sequence[packing.Window], exc: Exception) -> None:
    for window in chunk:
        for placement in window.placements:
            members[placement.index].future.set_exception(exc)


def _fingerprint(audio: Audio) -> bytes:
    return hashlib.blake2b(audio.tobytes(), digest_size=16).digest()


def _copy_outcome(copy: Future[Transcript], original: Future[Transcript]) -> None:
    error = original.exception()
    if error is not None:
        copy.set_exception(error)
    else:
        copy.set_result(original.result())


def _pack_key(options: TranscribeOptions) -> TranscribeOptions:
    # A packed window holds other jobs' audio: never carry text across it, take word
    # times so every word can be handed back to the job it came from, and judge
    # repetition per job afterwards (see Batcher._settle).
    return replace(options, word_timestamps=True, condition_on_previous_text=False, compression_ratio_threshold=None)


def _repetitive(transcript: Transcript, threshold: float | None) -> bool:
    """Whisper's gzip compression ratio test for decoding loops, on one job's text."""
    data = transcript.text.encode("utf-8")
    return threshold is not None and len(data) > 0 and len(data) / len(zlib.compress(data)) > threshold


def _chunks(items: Sequence[_Item], size: int) -> list[Sequence[_Item]]:
    return [items[i : i + size] for i in range(0, len(items), max(size, 1))]
