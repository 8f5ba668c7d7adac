"""Lifecycle policies at work: rule evaluation (pure), the LifecycleExecution workflow and its
activities on the control worker, removal of what a deleted image left behind, and the daily
Temporal schedule of each enabled policy. See docs/LIFECYCLE.md."""
