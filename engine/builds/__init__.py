"""Builds on Temporal: the image build workflow, the records it keeps, and how the API starts it."""
