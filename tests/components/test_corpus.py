"""Every real-world component document in the shared corpus validates, or fails with the right error.

The corpus (../shared/corpus/components, beside the repository) holds public documents, some
broken upstream on purpose (see its SOURCES.md). EXPECTED is the verdict for each file: "valid",
or a substring of the first error the validator must report. docs/corpus-components.md holds
the same table for readers; a test keeps the two in step.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from components.document import load_document
from components.errors import DocumentInvalid

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / ".." / "shared" / "corpus" / "components"
VALID = "valid"
_PARAMS_FORM = "parameters entries are written '- {0}: {{type: string, ...}}', not '- name: {0}' with sibling keys"

EXPECTED: dict[str, str] = {
    "amilifecycle__install_generic_component.yml": VALID,
    "amilifecycle__sample_component.yaml": VALID,
    "awsia__linuxbuild.yaml": VALID,
    "awsia__linuxtest.yaml": VALID,
    "awsia__win2022build.yaml": VALID,
    "awsia__win2022test.yaml": VALID,
    "awssamples-cfn__amazon-linux-2-container-image__Component.yaml": VALID,
    "awssamples-cfn__base-template__KiwiNgComponent.yaml": VALID,
    "awssamples-cfn__container-pipeline__BaselineComponent.yaml": VALID,
    "awssamples-cfn__macos-golden-image__BaselineComponent.yaml": VALID,
    "awssamples-cfn__macos-golden-image__VerifyComponent.yaml": VALID,
    "awssamples-cfn__packer-build__InstallPackerComponent.yaml": VALID,
    "awssamples-cfn__packer-build__RunPackerComponent.yaml": VALID,
    "awssamples-cfn__packer-build__VerifyPackerImageComponent.yaml": VALID,
    "awssamples-cfn__ubuntu-dotnet-web-application-pipeline__Component.yaml": VALID,
    "awssamples-cfn__windows-dotnet-application-stack__NSSMInstallationComponent.yaml": VALID,
    "awssamples-cfn__windows-dotnet-application-stack__WebsiteInstallationComponent.yaml": VALID,
    "awssamples-cfn__windows-dotnet-web-application-pipeline__Component.yaml": VALID,
    "awssamples-cfn__windows-server-2016-with-vscode__VisualStudioCodeComponent.yaml": VALID,
    "awssamples__ansible-playbook-execution-amazon-linux-2__component.yml": VALID,
    "awssamples__build-info.yml": VALID,
    "awssamples__chef-recipe-execution-linux__component.yml": VALID,
    "awssamples__chef-recipe-execution-windows__component.yml": ":51: YAML syntax error: found unexpected end",
    "awssamples__conditional-install.yml": VALID,
    "awssamples__configure-wsus-server.yaml": VALID,
    "awssamples__create-local-user.yaml": VALID,
    "awssamples__foreach-install.yml": VALID,
    "awssamples__hello-world-component.yaml": VALID,
    # DeleteFile takes only `path` (spec §8.3); the document passes DeleteFolder's `force`.
    "awssamples__inspec-test-linux-component.yml": ":76: step 'Cleanup' (phase test): inputs[0]: unknown field 'force'",
    "awssamples__inspec-test-windows-component.yml": VALID,
    "awssamples__install-sql-server.yaml": VALID,
    "awssamples__install_wordpress.yml": VALID,
    "awssamples__install_wordpress_with_db.yml": VALID,
    "awssamples__install_wordpress_with_db_pma.yml": VALID,
    "awssamples__orca-security-scan-test-component-linux__test_component.yml": VALID,
    "awssamples__reboot-and-resume.yml": VALID,
    "awssamples__secrets-at-build-time.yml": VALID,
    "awssamples__tolerated-failure.yml": VALID,
    "awssamples__web-download-verified.yml": VALID,
    "buildanddeploy__components__component.yml": VALID,
    # chaunceyyann: Go-template sources (`- name: X` parameters, `{{.X}}`), not AWSTOE until rendered.
    "chaunceyyann__aws-cli-component-windows.yaml": ":6: " + _PARAMS_FORM.format("AwsCliInstallerUrl"),
    "chaunceyyann__aws-cli-component.yaml": ":6: " + _PARAMS_FORM.format("AwsCliVersion"),
    "chaunceyyann__cloudwatch-agent-component-windows.yaml": ":6: " + _PARAMS_FORM.format("ConfigS3Path"),
    "chaunceyyann__cloudwatch-agent-component.yaml": ":6: " + _PARAMS_FORM.format("ConfigS3Path"),
    "chaunceyyann__falcon-sensor-component-windows.yaml": ":6: " + _PARAMS_FORM.format("FalconWindowsInstallerUrl"),
    "chaunceyyann__falcon-sensor-component.yaml": ":6: " + _PARAMS_FORM.format("FalconRpmUrl"),
    "chaunceyyann__nodejs-component-windows.yaml": ":6: " + _PARAMS_FORM.format("NodeInstallerUrl"),
    "chaunceyyann__nodejs-component.yaml": ":6: " + _PARAMS_FORM.format("NvmVersion"),
    "chaunceyyann__prometheus-exporters-component-windows.yaml": ":7: " + _PARAMS_FORM.format("WindowsExporterVersion"),
    "chaunceyyann__prometheus-exporters-component.yaml": ":46: YAML syntax error: could not find expected ':'",
    "chaunceyyann__python-component-windows.yaml": ":6: " + _PARAMS_FORM.format("PythonVersionUrl"),
    "chaunceyyann__python-component.yaml": ":6: " + _PARAMS_FORM.format("AdditionalPackages"),
    "chaunceyyann__splunk-indexer-component-windows.yaml": ":6: " + _PARAMS_FORM.format("SplunkInstallerUrl"),
    "chaunceyyann__splunk-indexer-component.yaml": ":6: " + _PARAMS_FORM.format("SplunkInstallerUrl"),
    "chaunceyyann__systemd-timesyncd-component.yaml": ":43: YAML syntax error: could not find expected ':'",
    "chaunceyyann__terraform-tflint-component-windows.yaml": ":6: " + _PARAMS_FORM.format("TerraformVersion"),
    "chaunceyyann__terraform-tflint-component.yaml": ":6: " + _PARAMS_FORM.format("TerraformVersion"),
    "cisl1__component-nginx.yml": VALID,
    "emilyburak__install-nginx.yaml": VALID,
    "emilyburak__invoke-http-lambda.yaml": VALID,
    "emmanueltsouris__install-vscode.yml": ":17: YAML syntax error: expected <block end>, but found '<scalar>'",
    "epomatti__tailscale-build.yaml": VALID,
    "epomatti__tailscale-test.yaml": VALID,
    "nhammadi__elastic-agent-windows-component__component.yml": VALID,
    "nhammadi__grafana-alloy-windows-component__component.yml": VALID,
    "nhammadi__newrelic-infra-windows-component__component.yml": VALID,
    # `@@X@@` placeholders are plain strings to AWSTOE, so these validate (and would run literally).
    "secureproxy__install_mock_servers.template": VALID,
    "secureproxy__install_secure_proxy.template": VALID,
    "swaleed__amazon-cloudwatch-agent-linux.yml": VALID,
    "swaleed__aws-cli-version-2-linux.yml": VALID,
    "swaleed__docker-ce-linux.yml": VALID,
    "swaleed__eni-attachment-test-linux.yml": VALID,
    "swaleed__python-3-linux.yml": VALID,
    "swaleed__reboot-linux.yml": VALID,
    "swaleed__stig-build-linux-low.yml": VALID,
    "swaleed__stig-build-linux-medium.yml": VALID,
    "swaleed__update-linux-kernel-mainline.yml": VALID,
    "swaleed__update-linux.yml": VALID,
    "toadslop__append-file.yaml": VALID,
    "toadslop__copy-file.yaml": VALID,
    "toadslop__copy-folder.yaml": VALID,
    "toadslop__create-file.yaml": VALID,
    "toadslop__create-folder.yaml": VALID,
    "toadslop__create-symlink.yaml": VALID,
    "toadslop__delete-folder.yaml": VALID,
    "toadslop__exec-powershell-commands.yaml": VALID,
    "toadslop__exec-powershell-file.yaml": VALID,
    "toadslop__file-and-folder-permissions.yaml": VALID,
    "toadslop__install-msi.yaml": VALID,
    "toadslop__list-files.yaml": VALID,
    "toadslop__move-file.yaml": VALID,
    "toadslop__move-folder.yaml": VALID,
    "toadslop__read-file.yaml": VALID,
    "toadslop__reboot.yaml": ":14: step 'RebootStep' (phase build): step names must be unique within a phase",
    "toadslop__s3-download.yaml": VALID,
    "toadslop__s3-upload.yaml": VALID,
    "toadslop__set-file-encoding.yaml": ":13: step 'SettingFileEncodingProperty' (phase build): step names must be",
    "toadslop__set-file-owner.yaml": VALID,
    "toadslop__set-folder-owner.yaml": VALID,
    "toadslop__set-registry.yaml": VALID,
    "toadslop__test.yaml": ":10: 'Source' is defined more than once (parameters and constants share one namespace)",
    "toadslop__uninstall-msi.yaml": VALID,
    "toadslop__update-os.yaml": VALID,
    "toadslop__web-download.yaml": VALID,
    "walkerk1980__linux_component.yaml": VALID,
    "walkerk1980__windows_component.yaml": VALID,
}

#: Later problems the validator must also report for these files (not only the first one).
ALSO_EXPECTED: dict[str, list[str]] = {
    "toadslop__test.yaml": [
        ":100: step 'ForEachDelim' (phase build): loop.forEach.delimiter must be one character",
        ":126: step 'StringComparison' (phase build): '{{ validate.ApplicationVersion.outputs.stdout }}' refers to "
        "step 'ApplicationVersion' of phase 'validate', which does not come before this step",
    ],
    "chaunceyyann__aws-cli-component-windows.yaml": [
        ":17: step 'InstallAwsCli' (phase build): '{{.AwsCliInstallerUrl}}' is not a valid variable reference",
    ],
}



def test_corpus_is_beside_the_repository() -> None:
    # CI lays shared/ beside the clone; without it every corpus case below would vanish silently.
    assert CORPUS.is_dir(), f"corpus not found at {CORPUS}"


def corpus_files() -> list[str]:
    return sorted(p.name for p in CORPUS.iterdir() if p.name != "SOURCES.md") if CORPUS.is_dir() else []


def test_table_covers_the_whole_corpus() -> None:
    assert corpus_files() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_document(name: str) -> None:
    expected = EXPECTED[name]
    if expected == VALID:
        load_document(CORPUS / name)
        return
    with pytest.raises(DocumentInvalid) as info:
        load_document(CORPUS / name)
    messages = [str(e) for e in info.value.errors]
    assert messages[0].startswith(name + ":"), messages
    assert expected in messages[0], messages
    for more in ALSO_EXPECTED.get(name, []):
        assert any(more in m for m in messages), messages


def test_docs_table_matches() -> None:
    text = (REPO / "docs" / "corpus-components.md").read_text()
    for name, expected in EXPECTED.items():
        row = f"| `{name}` | {'valid' if expected == VALID else 'invalid'} |"
        assert row in text, row
