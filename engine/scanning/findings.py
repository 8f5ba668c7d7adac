"""Matches as ImageScanFinding bodies (the shape Inspector gives Image Builder)."""

from __future__ import annotations

from typing import Any

from engine.scanning.database import Match, VulnerablePackage


def _split_dpkg(version: str) -> dict[str, Any]:
    """Inspector reports a package version as epoch, version and release."""
    epoch, _, rest = version.rpartition(":") if ":" in version else ("", "", version)
    upstream, sep, release = rest.rpartition("-")
    out: dict[str, Any] = {"version": upstream if sep else rest}
    if sep and release:
        out["release"] = release
    if epoch.isdigit():
        out["epoch"] = int(epoch)
    return out


def _package(p: VulnerablePackage) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": p.name, **_split_dpkg(p.version), "packageManager": "OS"}
    if p.fixed_in:
        entry["fixedInVersion"] = p.fixed_in
        entry["remediation"] = f"Upgrade {p.name} to {p.fixed_in}"
    else:
        entry["fixedInVersion"] = "NotAvailable"
    return entry


def finding(match: Match, account: str, image_arn: str, pipeline_arn: str | None, now: str) -> dict[str, Any]:
    adv = match.advisory
    names = [p.name for p in match.packages]
    fixed = [p for p in match.packages if p.fixed_in]
    fix_available = "YES" if len(fixed) == len(match.packages) else ("PARTIAL" if fixed else "NO")
    recommendation = "; ".join(f"Upgrade {p.name} to {p.fixed_in}" for p in fixed) if fixed else "None Provided"
    details: dict[str, Any] = {
        "vulnerabilityId": adv.id,
        "vulnerablePackages": [_package(p) for p in match.packages],
        "source": adv.source,
        "sourceUrl": adv.source_url or None,
        "vendorSeverity": match.severity,
        "relatedVulnerabilities": list(adv.related) or None,
        "referenceUrls": list(adv.references[:20]) or None,
        "vendorCreatedAt": adv.published or None,
        "vendorUpdatedAt": adv.modified or None,
    }
    body: dict[str, Any] = {
        "awsAccountId": account,
        "imageBuildVersionArn": image_arn,
        "imagePipelineArn": pipeline_arn,
        "type": "PACKAGE_VULNERABILITY",
        "title": f"{adv.id} - {', '.join(names)}"[:1024],
        "description": adv.description[:4096],
        "remediation": {"recommendation": {"text": recommendation[:1024]}},
        "severity": match.severity,
        "firstObservedAt": now,
        "updatedAt": now,
        "packageVulnerabilityDetails": details,
        "fixAvailable": fix_available,
    }
    if adv.score is not None:
        body["inspectorScore"] = adv.score
        cvss = {"scoringVector": adv.vector, "version": adv.cvss_version, "source": adv.source}
        details["cvss"] = [{"baseScore": adv.score, **cvss}]
        body["inspectorScoreDetails"] = {
            "adjustedCvss": {
                "scoreSource": adv.source,
                "cvssSource": adv.source,
                "version": adv.cvss_version,
                "score": adv.score,
                "scoringVector": adv.vector,
                "adjustments": [],
            }
        }
    return _prune(body)


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value
