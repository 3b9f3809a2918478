"""Names shared by producers and workers: queues, task names, key layouts."""

TRANSCRIBE_TASK = "farm.transcribe"
TRANSCRIBE_PART_TASK = "farm.transcribe_part"
MERGE_PARTS_TASK = "farm.merge_parts"

# Redis keys the farm keeps beside Celery's own (all under "farm:").
# Hash of seconds done per part of a fanned-out job, for its overall progress.
FANOUT_PROGRESS_KEY = "farm:fanout:{job_id}"
# Counters and histograms workers record for the Prometheus endpoint.
METRICS_KEY_PREFIX = "farm:metrics:"
# Marks a job (or part) whose end was counted in the metrics: counted once, whatever reruns it.
COUNTED_KEY = "farm:counted:{job_id}"
# Marks a job whose outputs and webhook were already delivered (once per job).
ENDED_KEY = "farm:ended:{job_id}"
# Items no worker could read (a list, newest first, of JSON records: the raw item, why, when).
DEAD_LETTER_KEY = "farm.dead"
# Delivery tags a worker process holds unacknowledged (a set per host:pid), so that whoever
# sees it die can give them back at once instead of after visibility_timeout.
UNACKED_OWNER_KEY = "farm:unacked:{owner}"
# The API's index of recent jobs (sorted set by creation time) and one hash per job.
API_JOBS_INDEX_KEY = "farm:api:jobs"
API_JOB_KEY = "farm:api:job:{job_id}"
# Every job id a producer submitted (hash: queue, created_at), so unknown ids are not "queued".
SUBMITTED_KEY = "farm:job:{job_id}"
# Set when a job is cancelled; workers check it before and between parts of a job.
CANCELLED_KEY = "farm:cancelled:{job_id}"
# The job id an idempotency key created (by the key's SHA-256), for repeated submissions.
IDEMPOTENCY_KEY = "farm:idempotency:{digest}"
# Durable webhook outbox: pending delivery ids by when each is due, and one hash each.
WEBHOOK_OUTBOX_KEY = "farm:webhooks:due"
WEBHOOK_KEY = "farm:webhook:{delivery_id}"

# Every worker also listens here, so a job that names no device goes to whoever is free.
SHARED_QUEUE = "farm"
CPU_QUEUE = "farm.cpu"
GPU_QUEUE_FORMAT = "farm.gpu{index}"

# Custom Celery state while a job reports how much of its audio is done.
PROGRESS_STATE = "PROGRESS"
# A progress report carries at most the last this many characters of the text so far.
PROGRESS_TEXT_CHARS = 2000

# ISO 639-1 codes (plus haw and yue) that multilingual Whisper models know.
LANGUAGES = (
    "af", "am", "ar", "as", "az", "ba", "be", "bg", "bn", "bo", "br", "bs", "ca", "cs",
    "cy", "da", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fo", "fr", "gl", "gu",
    "ha", "haw", "he", "hi", "hr", "ht", "hu", "hy", "id", "is", "it", "ja", "jw", "ka",
    "kk", "km", "kn", "ko", "la", "lb", "ln", "lo", "lt", "lv", "mg", "mi", "mk", "ml",
    "mn", "mr", "ms", "mt", "my", "ne", "nl", "nn", "no", "oc", "pa", "pl", "ps", "pt",
    "ro", "ru", "sa", "sd", "si", "sk", "sl", "sn", "so", "sq", "sr", "su", "sv", "sw",
    "ta", "te", "tg", "th", "tk", "tl", "tr", "tt", "uk", "ur", "uz", "vi", "yi", "yo",
    "zh", "yue",
)  # fmt: skip

OUTPUT_FORMATS = ("txt", "json", "srt", "vtt", "tsv")
# What `farm transcribe DIR` and `farm bench DIR` take from a directory.
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".webm", ".mp4"})

# The Whisper back ends a worker can run (farm.inference.engines.load_engine builds them).
ENGINES = ("ctranslate2", "transformers")
# The beam widths a job or the settings may ask for (1: greedy decoding).
MIN_BEAM_SIZE, MAX_BEAM_SIZE = 1, 20


def gpu_queue(index: int) -> str:
    return GPU_QUEUE_FORMAT.format(index=index)
