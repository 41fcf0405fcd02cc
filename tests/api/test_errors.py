"""Domain errors become HTTP statuses in one table (api.errors.STATUS_OF_DOMAIN_ERROR)."""

from __future__ import annotations

import pytest

from api.errors import status_of
from chain.errors import (
    Conflict,
    EncodingError,
    Forbidden,
    InvalidTransaction,
    LedgerError,
    NotFound,
    TooLarge,
    ValidationError,
)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound("x", error_code="job_not_found"), 404),
        (Forbidden("x", error_code="miner_not_owned"), 403),
        (Conflict("x", error_code="job_not_pending"), 409),
        (TooLarge("x"), 413),
        (ValidationError("x"), 400),
        (InvalidTransaction("x"), 400),
        (EncodingError("x"), 400),
        (LedgerError("x"), 400),
    ],
)
def test_each_domain_error_has_its_status(error: LedgerError, status: int) -> None:
    assert status_of(error) == status
