"""One exception hierarchy for the ledger. Each class carries a stable error_code."""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error the chain core raises."""

    error_code = "ledger_error"

    def __init__(self, detail: str, *, error_code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if error_code is not None:
            self.error_code = error_code


class InvalidTransaction(LedgerError):
    """A transaction is malformed or not allowed in the current state."""

    error_code = "invalid_transaction"


class NotFound(InvalidTransaction):
    """A transaction refers to a record that does not exist."""

    error_code = "not_found"


class Conflict(InvalidTransaction):
    """A transaction is well-formed but conflicts with the current state."""

    error_code = "conflict"


class Forbidden(InvalidTransaction):
    """The sender may not perform this transaction."""

    error_code = "forbidden"


class InvalidBlock(LedgerError):
    """A block fails verification: a link, a root, a signature, or a transaction."""

    error_code = "invalid_block"


class InvalidGenesis(LedgerError):
    """genesis.json is malformed; the detail names the field."""

    error_code = "invalid_genesis"


class EncodingError(LedgerError):
    """Bytes could not be decoded into a record."""

    error_code = "invalid_encoding"


class TooLarge(InvalidTransaction):
    """A field exceeds a size cap set by the network parameters."""

    error_code = "payload_too_large"


class ValidationError(InvalidTransaction):
    """A field is missing, of the wrong type, or out of range; the detail names it."""

    error_code = "validation_error"


class ProofInvalid(LedgerError):
    """A receipt proof bundle or a checkpoint does not verify; the detail names the check."""

    error_code = "proof_invalid"
