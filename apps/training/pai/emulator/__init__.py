"""The PAI emulator: a loopback HTTP server that answers PAI TrainingService's API the way PAI does, and an OSS
beside it. It is an emulator, not PAI: it says so everywhere (the Server header, an ``Emulator`` field in every
answer, request ids, log lines).

It implements the part of the paistudio API (2022-01-12) Mlab uses, on PAI's paths:

=====  ================================================  ======================
POST   /api/v1/trainingjobs                              CreateTrainingJob
GET    /api/v1/trainingjobs                              ListTrainingJobs
GET    /api/v1/trainingjobs/{id}                         GetTrainingJob
PUT    /api/v1/trainingjobs/{id}/stop                    StopTrainingJob
GET    /api/v1/trainingjobs/{id}/logs                    ListTrainingJobLogs
POST   /api/v1/algorithms                                CreateAlgorithm
GET    /api/v1/algorithms                                ListAlgorithms
POST   /api/v1/algorithms/{id}/versions/{version}        CreateAlgorithmVersion
GET    /api/v1/algorithms/{id}/versions[/{version}]      ListAlgorithmVersions, GetAlgorithmVersion
=====  ================================================  ======================

Every API request must carry a valid ACS3-HMAC-SHA256 signature (checked by the same code that signs the
client's requests), for the emulator's own Host, with a valid STS token when the key is an STS key; a bad one
gets Alibaba's error body with a 401, 403 or 400. Answers carry the types Alibaba's SDK declares. Jobs move
through PAI's status sequence and really train: the program (an inline AlgorithmSpec with its CodeDir unpacked,
a registered algorithm version, or the pre-registered ``mlab-trainer`` running ``trainer_command``) runs in a
subprocess in a PAI-shaped work directory (see :mod:`.jobs`, :mod:`.program`); ``oss://`` inputs and outputs go
through the emulator's OSS (:mod:`.oss`), others are fetched (file://, http) or served over http at
``/outputs/<job id>/<channel>/<file>``.

It can be told to fail (:class:`~.faults.Faults`, :class:`~.oss.OssFaults`, or ``POST /_emulator/faults`` from
another process): N error answers, a request held past the client's read timeout, CreateFailed, a job that fails
while running, actions refused (Forbidden.RAM), an OSS body cut mid-upload, OSS permissions refused to Mlab's
credentials or to the job's role.
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
