"""Build events: image state changes, workflow and step state changes and scan results, as
EventBridge-shaped JSON (source ``aws.imagebuilder``), written to an outbox in the same
transaction as the change they describe and POSTed by the control worker to the webhook
endpoints that the infrastructure configuration's ``snsTopicArn`` maps to. See docs/EVENTS.md."""
