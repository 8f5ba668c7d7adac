"""Authentication errors as AWS sends them, so boto3 and the AWS CLI parse the code.

These come before any operation is known, so they are not narrowed to an operation's declared
errors. Codes and statuses are those of the Image Builder API reference's "Common Errors"
(IncompleteSignature 403, UnrecognizedClientException 403, ExpiredTokenException 403,
RequestExpired 400); the two it does not list are the ones AWS front ends send for them
(MissingAuthenticationTokenException 403, SignatureDoesNotMatch 403).
"""

from __future__ import annotations

from engine.api.errors import ApiError


class AuthError(ApiError):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(code, message)
        self.status = status


def missing() -> AuthError:
    return AuthError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)


def incomplete(message: str) -> AuthError:
    return AuthError("IncompleteSignature", message, 403)


def signature_mismatch(message: str) -> AuthError:
    return AuthError("SignatureDoesNotMatch", message, 403)


def unknown_key() -> AuthError:
    return AuthError("UnrecognizedClientException", "The security token included in the request is invalid.", 403)


def expired_token() -> AuthError:
    return AuthError("ExpiredTokenException", "The security token included in the request is expired", 403)


def request_expired(message: str) -> AuthError:
    return AuthError("RequestExpired", message, 400)
