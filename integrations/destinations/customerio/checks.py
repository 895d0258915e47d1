"""Customer.io's credential checks, by calls that change nothing: connecting and re-verifying."""

from __future__ import annotations

from integrations.destinations.base import AuthError, ForbiddenError, PayloadTooLargeError, ValidationError
from integrations.destinations.customerio import answers, rules, words
from integrations.destinations.customerio.client import BATCH_PATH, PEOPLE_PATH, REGION_PATH, AppClient, TrackClient

REGION_LABELS = {"us": "US", "eu": "EU"}
APP_KEY_HINT = (
    "Create one in Customer.io under Settings > API Credentials > App API Keys, for this workspace, and connect again."
)
# The people lookup's probe at connect and verify: an id nobody has, in the shape of the workspace's identifier.
PROBE_IDS = {"id": "flowsync-connect-check", "email": "connect-check@flowsync.invalid"}


def region_check(client: TrackClient) -> answers.Region:
    """The workspace's region and environment id, as the region check answers them from this
    client's host (it answers from either, reference 1.4)."""
    response = client.request("GET", REGION_PATH)
    return answers.read_region(response.status, response.body)


def check_write(client: TrackClient) -> None:
    """Prove the pair may write on its region's host, changing nothing: an empty batch. The region
    check answers from either host and proves neither writing nor the host (reference 1.3: a pair
    fails on the other region's host). A refusal of the empty body itself (400) means the pair got
    past the key check. Raises AuthError or ForbiddenError when it did not."""
    try:
        client.request("POST", BATCH_PATH, data=rules.batch_body([]))
    except (AuthError, ForbiddenError, PayloadTooLargeError):
        raise
    except ValidationError:
        return


def check_app_key(app: AppClient, identify_by: str) -> None:
    """Prove the App API key may look people up (reference 5, getPeopleById), with an id nobody has.
    Raises AuthError (code app_key_refused) when it may not."""
    probe = PROBE_IDS[identify_by]
    try:
        response = app.request("POST", PEOPLE_PATH, params={"id_type": identify_by}, json={"ids": [probe]})
    except (AuthError, ForbiddenError) as exc:
        raise AuthError(
            f"Customer.io refused the App API key in the {REGION_LABELS[app.region]} region ({exc.message}).",
            code=words.APP_KEY_REFUSED,
            status=exc.status,
        ) from None
    answers.found_people(response.status, response.body, identify_by, [probe])
