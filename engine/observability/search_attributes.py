"""Temporal search attributes that make builds findable in the Temporal UI and CLI:
``ImageArn = 'arn:...'``, ``RecipeArn = '...'``, ``PipelineArn = '...'``.

The control worker and the API server register them on the namespace when they connect (so
``imagebuilder up`` has them from the start); a process sets them on the builds it starts only
once it saw them registered, so a cluster where we may not add them (no operator permission)
keeps working without them, and a start refused for an unknown attribute is retried without
(interceptors.py).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

if TYPE_CHECKING:
    from temporalio.client import Client

    from engine.builds.model import BuildInput

log = logging.getLogger(__name__)

IMAGE_ARN = SearchAttributeKey.for_keyword("ImageArn")
RECIPE_ARN = SearchAttributeKey.for_keyword("RecipeArn")
PIPELINE_ARN = SearchAttributeKey.for_keyword("PipelineArn")
KEYS = (IMAGE_ARN, RECIPE_ARN, PIPELINE_ARN)


async def ensure_registered(client: Client) -> bool:
    """Add whichever of our attributes the namespace lacks; False (logged) when we may not."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
    from temporalio.service import RPCError, RPCStatusCode

    namespace = client.namespace
    try:
        have = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
        missing = {
            k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in KEYS if k.name not in have.custom_attributes
        }
        if missing:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
            )
            log.info("registered Temporal search attributes %s on namespace %s", ", ".join(sorted(missing)), namespace)
    except RPCError as exc:
        if exc.status != RPCStatusCode.ALREADY_EXISTS:  # another process registered them first
            log.warning(
                "could not register search attributes %s on namespace %s (%s): builds run without them; "
                "an operator can add them with `temporal operator search-attribute create`",
                ", ".join(k.name for k in KEYS),
                namespace,
                exc.message,
            )
            return False
    return True


def for_build(build: BuildInput, pipeline_arn: str = "") -> TypedSearchAttributes:
    pairs = [SearchAttributePair(IMAGE_ARN, build.context.image_arn)]
    recipe_arn = build.context.recipe.get("arn")
    if recipe_arn:
        pairs.append(SearchAttributePair(RECIPE_ARN, str(recipe_arn)))
    if pipeline_arn:
        pairs.append(SearchAttributePair(PIPELINE_ARN, pipeline_arn))
    return TypedSearchAttributes(pairs)


def for_pipeline_run(pipeline_arn: str, build: BuildInput | None) -> TypedSearchAttributes:
    if build is not None:
        return for_build(build, pipeline_arn)
    return TypedSearchAttributes([SearchAttributePair(PIPELINE_ARN, pipeline_arn)])
