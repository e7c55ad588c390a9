"""``pai_check``: can this installation's account sign PAI calls and use its OSS prefix? In plain words.

Each check says what it tried, whether it worked, and when it did not, why and which permission (or setting)
is missing. It reads from PAI (ListTrainingJobs filtered on a label no job carries; the registered algorithm
when one is configured) and writes, reads back and deletes one probe object under the OSS prefix: it touches
nothing else. Nothing here imports Django.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .client import PaiClient
from .credentials import credentials_from_settings
from .errors import PaiConfigurationError, PaiError, PaiRefused, PaiUnavailable
from .oss import OssStore
from .request import JobSettings

PROBE_LABEL = {"mlab-pai-check": "probe"}
_SIGNATURE_CODES = {
    "SignatureDoesNotMatch": "the AccessKey secret does not match the AccessKey id",
    "InvalidAccessKeyId.NotFound": "the AccessKey id does not exist (or was deleted)",
    "InvalidAccessKeyId.Inactive": "the AccessKey is disabled",
    "InvalidSecurityToken.Expired": "the STS token has expired",
    "InvalidSecurityToken.Mismatch": "the STS token does not belong to this AccessKey",
    "InvalidSecurityToken.Malformed": "the STS token is malformed",
    "InvalidTimeStamp.Expired": "this machine's clock is more than 15 minutes off",
}


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    message: str


def _pai_failure(error: PaiError, action: str, workspace: str) -> str:
    if isinstance(error, PaiRefused):
        if error.code in _SIGNATURE_CODES:
            return f"PAI refused the signature: {_SIGNATURE_CODES[error.code]} ({error.code})."
        if error.status == 403 or error.code.startswith(("Forbidden", "NoPermission")):
            return (
                f"The account may not call {action} in workspace {workspace}: grant it paistudio:{action} "
                f"(PAI answered {error.status} {error.code})."
            )
        return f"PAI refused {action}: {error.message} ({error.status} {error.code})."
    if isinstance(error, PaiUnavailable):
        return f"PAI could not be reached: {error}"
    return str(error)


def check_account(
    settings: Any, *, client: PaiClient | None = None, store: OssStore | None = None
) -> list[CheckResult]:
    """Every check, in order; a check whose prerequisite failed is reported as not run."""
    results: list[CheckResult] = []
    try:
        credentials = credentials_from_settings(settings)
        credentials.get()
        results.append(CheckResult("credentials", True, f"Signing with {credentials.describe()}."))
    except PaiConfigurationError as error:
        return [CheckResult("credentials", False, str(error))]

    try:
        client = client or PaiClient.from_settings(settings)
    except PaiConfigurationError as error:
        results.append(CheckResult("PAI", False, str(error)))
    if client is not None:
        try:
            client.list_training_jobs(PROBE_LABEL, page_size=1)
            results.append(
                CheckResult(
                    "PAI",
                    True,
                    f"Signed a ListTrainingJobs call to {client.base_url} and PAI accepted it (workspace "
                    f"{client.workspace_id}).",
                )
            )
        except PaiError as error:
            results.append(CheckResult("PAI", False, _pai_failure(error, "ListTrainingJobs", client.workspace_id)))
        results += _algorithm_checks(settings, client)

    try:
        store = store or OssStore.from_settings(settings, credentials=credentials)
    except PaiConfigurationError as error:
        results.append(CheckResult("OSS", False, str(error)))
        return results
    for step in store.probe():
        results.append(CheckResult(f"OSS {step.permission}", step.ok, step.message))
    return results


def _algorithm_checks(settings: Any, client: PaiClient) -> list[CheckResult]:
    job = JobSettings.from_settings(settings)
    if job.inline:
        if not job.image:
            return [CheckResult("job spec", False, "Jobs carry an inline AlgorithmSpec: set MLAB_PAI_IMAGE.")]
        return [CheckResult("job spec", True, f"Jobs carry an inline AlgorithmSpec running image {job.image}.")]
    try:
        found = client.list_algorithms(job.algorithm_name)
    except PaiError as error:
        return [CheckResult("algorithm", False, _pai_failure(error, "ListAlgorithms", client.workspace_id))]
    if not found:
        return [
            CheckResult(
                "algorithm",
                False,
                f"No algorithm named {job.algorithm_name} in the workspace: run manage.py pai_register_algorithm, "
                "or leave MLAB_PAI_ALGORITHM_NAME empty for an inline spec.",
            )
        ]
    listed = client.list_algorithm_versions(found[0]["AlgorithmId"])
    versions: set[str] = {v["AlgorithmVersion"] for v in listed if v.get("AlgorithmVersion") is not None}
    if job.algorithm_version not in versions:
        return [
            CheckResult(
                "algorithm",
                False,
                f"{job.algorithm_name} has no version {job.algorithm_version} (it has {', '.join(sorted(versions)) or 'none'}).",
            )
        ]
    return [CheckResult("algorithm", True, f"Jobs run {job.algorithm_name} {job.algorithm_version}.")]
