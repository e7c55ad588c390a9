"""The PAI emulator: a loopback HTTP server that answers PAI TrainingService's API the way PAI does.

It implements the part of the paistudio API (2022-01-12) Mlab uses, on PAI's paths:

=====  ======================================  ====================
POST   /api/v1/trainingjobs                    CreateTrainingJob
GET    /api/v1/trainingjobs                    ListTrainingJobs (WorkspaceId, Labels as JSON, paging)
GET    /api/v1/trainingjobs/{id}               GetTrainingJob
PUT    /api/v1/trainingjobs/{id}/stop          StopTrainingJob
GET    /api/v1/trainingjobs/{id}/logs          ListTrainingJobLogs
=====  ======================================  ====================

Every API request must carry a valid ACS3-HMAC-SHA256 signature (checked by the same code that signs the
client's requests); a bad one gets Alibaba's error body with a 401 or 403. Jobs move through PAI's status
sequence (Creating → Created → Initializing → Submitted → Running → Succeed | Failed | Terminated, or
CreateFailed / InitializeFailed) and really train: the trainer runs in a subprocess in a PAI-shaped work
directory (see :mod:`.emulated_jobs`), and its output channel is served back over http at
``/outputs/<job id>/<channel>/<file>``.

It can be told to fail (:class:`~.emulated_jobs.Faults`, or ``POST /_emulator/faults`` from another
process): N error answers, a request held past the client's read timeout (before or after carrying it out),
CreateFailed, a job that fails while running. It says it is an emulator everywhere: the Server header,
an ``Emulator`` field in every answer, request ids, log lines.
"""

from .faults import Faults, apply_fault_spec
from .jobs import LABEL, EmulatedJob, default_trainer_command, validate_create_body
from .server import ApiError
from .service import PaiEmulator

__all__ = [
    "LABEL",
    "ApiError",
    "EmulatedJob",
    "Faults",
    "PaiEmulator",
    "apply_fault_spec",
    "default_trainer_command",
    "validate_create_body",
]
