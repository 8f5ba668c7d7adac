"""Image scanning: package inventories matched against vulnerability data (an offline database
file in OSV or Debian security tracker JSON, or a scanner installed on the worker), written as
ImageScanFinding records that ListImageScanFindings and its aggregations read. See docs/SCANNING.md."""
