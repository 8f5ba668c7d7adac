"""API errors, shaped the way AWS clients parse them.

A handler raises ``ApiError(code, message)`` with the error it means; the dispatcher makes
sure each operation answers only with the errors the model declares for it, translating to
the nearest declared one (see ``FALLBACKS``).
"""

from __future__ import annotations

from engine.api import model


class ApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> ApiError:
    return ApiError("InvalidRequestException", message)


def not_found(message: str) -> ApiError:
    return ApiError("ResourceNotFoundException", message)


def bad_parameter(message: str) -> ApiError:
    return ApiError("InvalidParameterValueException", message)


# When an operation does not declare the error a handler raised, the first declared entry of
# its fallback list is used instead. Every operation declares ServiceException, so the chains
# end in client-error codes before that.
_CLIENT = ["InvalidRequestException", "InvalidParameterValueException", "InvalidParameterException", "ClientException"]
FALLBACKS: dict[str, list[str]] = {
    "InvalidRequestException": _CLIENT,
    "InvalidParameterValueException": ["InvalidParameterValueException", *_CLIENT],
    "InvalidParameterException": ["InvalidParameterException", *_CLIENT],
    "InvalidParameterCombinationException": ["InvalidParameterCombinationException", *_CLIENT],
    "InvalidVersionNumberException": ["InvalidVersionNumberException", *_CLIENT],
    "ResourceNotFoundException": ["ResourceNotFoundException", "InvalidParameterValueException", *_CLIENT],
    "ResourceAlreadyExistsException": ["ResourceAlreadyExistsException", "ResourceInUseException", *_CLIENT],
    "ResourceDependencyException": ["ResourceDependencyException", "ResourceInUseException", *_CLIENT],
    "ResourceInUseException": ["ResourceInUseException", *_CLIENT],
    "InvalidPaginationTokenException": ["InvalidPaginationTokenException", *_CLIENT],
    "ForbiddenException": ["ForbiddenException", "AccessDeniedException", "ClientException", *_CLIENT],
    "AccessDeniedException": ["AccessDeniedException", "ForbiddenException", "ClientException", *_CLIENT],
    "ServiceUnavailableException": ["ServiceUnavailableException", "ServiceException"],
}


def for_operation(operation: str | None, error: ApiError) -> ApiError:
    """The error as this operation is allowed to answer it."""
    if operation is None:
        return error
    declared = model.declared_errors(operation)
    if error.code in declared:
        return error
    for code in FALLBACKS.get(error.code, _CLIENT):
        if code in declared:
            return ApiError(code, error.message)
    return ApiError("ServiceException", error.message)


def status_of(code: str) -> int:
    try:
        return model.error_status(code)
    except Exception:  # an unknown code: not from the model, e.g. a routing error
        return 400
