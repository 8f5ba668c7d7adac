"""OpenTelemetry tracing of builds through temporalio.contrib.opentelemetry's interceptor.

``otel_exporter`` chooses where spans go: ``none`` (no tracing interceptor at all), ``console``
(JSON per span on stdout), or an OTLP/HTTP collector URL (``http://collector:4318``; the
``/v1/traces`` path is added). A CreateImage's StartWorkflow span in the API server is the parent
of the build's RunWorkflow span on the control worker and of each step's RunActivity span on the
executor workers; every one of them carries ``imagebuilder.image_arn``.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from temporalio.contrib.opentelemetry import TracingInterceptor, TracingWorkflowInboundInterceptor
from temporalio.worker import ExecuteWorkflowInput, WorkflowInterceptorClassInput

IMAGE_ARN_ATTRIBUTE = "imagebuilder.image_arn"
_enabled = False


def configure_tracing(exporter: str, service: str) -> bool:
    """Install the global tracer provider for this process; False when tracing is off."""
    global _enabled
    if exporter in ("", "none"):
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    span_exporter: SpanExporter
    if exporter == "console":
        span_exporter = ConsoleSpanExporter()
    elif exporter.startswith(("http://", "https://")):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter(endpoint=exporter.rstrip("/") + "/v1/traces")
    else:
        raise SystemExit(
            "imagebuilder: --otel-exporter (or IMAGEBUILDER_OTEL_EXPORTER) must be none, console or an "
            f"OTLP/HTTP URL like http://collector:4318, not {exporter!r}"
        )
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(provider)
    _enabled = True
    return True


def use_tracer_provider(provider: trace.TracerProvider) -> None:
    """Trace this process into a provider made elsewhere (tests, embedding applications)."""
    global _enabled
    trace.set_tracer_provider(provider)
    _enabled = True


class BuildTracingInterceptor(TracingInterceptor):
    """Temporal's tracing interceptor, with the image ARN on the spans a build's workflow makes
    (the SDK's documented way to add attributes: subclass both interceptors)."""

    def __init__(self, tracer: trace.Tracer | None = None) -> None:
        # Builds also start from schedules and the temporal CLI, where no client span exists.
        super().__init__(tracer, always_create_workflow_spans=True)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[TracingWorkflowInboundInterceptor]:
        super().workflow_interceptor_class(input)  # registers the span extern function
        return _BuildTracingWorkflowInbound


class _BuildTracingWorkflowInbound(TracingWorkflowInboundInterceptor):
    _image_arn = ""

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        arg = input.args[0] if input.args else None
        context = getattr(arg, "context", None) or getattr(getattr(arg, "build", None), "context", None)
        self._image_arn = str(getattr(context, "image_arn", "") or "")
        return await super().execute_workflow(input)

    def _completed_span(self, span_name: str, **kwargs: Any) -> None:
        if self._image_arn:
            kwargs["additional_attributes"] = {
                **(kwargs.get("additional_attributes") or {}),
                IMAGE_ARN_ATTRIBUTE: self._image_arn,
            }
        super()._completed_span(span_name, **kwargs)


def interceptors(tracer: trace.Tracer | None = None) -> list[Any]:
    """The tracing interceptor when this process traces (configure_tracing) or a tracer is given."""
    return [BuildTracingInterceptor(tracer)] if _enabled or tracer is not None else []
