"""Image and container recipes through real boto3 clients: versions, parents, components and
their parameters, Dockerfile templates, lists, policies, delete, idempotency and dryRun."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from engine.store import Record, Store
from tests.api.conftest import ACCOUNT, Server, check_output, error_code

ARN = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}"
MANAGED = "arn:aws:imagebuilder:us-east-1:aws"
PARENT = "debian-12-x86_64"  # a free-form local parent image name, resolved at build time

COMPONENT = """name: configure
schemaVersion: 1.0
parameters:
  - Port:
      type: string
      description: no default, so recipes must set it
  - Greeting:
      type: string
      default: hi
phases:
  - name: build
    steps:
      - name: Configure
        action: ExecuteBash
        inputs:
          commands: ["echo {{ Greeting }} {{ Port }}"]
"""
PLAIN = COMPONENT.replace(
    "  - Port:\n      type: string\n      description: no default, so recipes must set it\n", ""
).replace(" {{ Port }}", "")
DOCKERFILE = (
    "FROM {{{ imagebuilder:parentImage }}}\n{{{ imagebuilder:environments }}}\n{{{ imagebuilder:components }}}\n"
)
POLICY = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["111122223333"]},'
    '"Action":["imagebuilder:GetImageRecipe"],"Resource":["*"]}]}'
)


def missing(err: ClientError) -> bool:
    """Get/Delete of recipes declare no ResourceNotFoundException: they answer InvalidRequest."""
    return error_code(err) == "InvalidRequestException" and "recipe matches" in str(err)


def fails(call: Any, **kw: Any) -> ClientError:
    with pytest.raises(ClientError) as exc:
        call(**kw)
    return exc.value


@pytest.fixture(scope="module")
def comps(ib: Any) -> dict[str, str]:
    """Components the recipes use: one with a required parameter (two versions), one plain,
    one for Windows."""
    made = {}
    for key, name, version, platform, data in [
        ("param1", "configure", "1.0.0", "Linux", COMPONENT),
        ("param2", "configure", "1.1.0", "Linux", COMPONENT + "# newer\n"),
        ("plain", "plain", "1.0.0", "Linux", PLAIN),
        ("windows", "win-plain", "1.0.0", "Windows", PLAIN),
    ]:
        r = ib.create_component(name=name, semanticVersion=version, platform=platform, data=data)
        made[key] = r["componentBuildVersionArn"]
    return made


def image_recipe(ib: Any, name: str, version: str = "1.0.0", **kw: Any) -> dict[str, Any]:
    kw.setdefault("parentImage", PARENT)
    r = ib.create_image_recipe(name=name, semanticVersion=version, **kw)
    check_output("CreateImageRecipe", r)
    return dict(r)


def container_recipe(ib: Any, name: str, version: str = "1.0.0", **kw: Any) -> dict[str, Any]:
    kw.setdefault("parentImage", "debian:bookworm")
    kw.setdefault("containerType", "DOCKER")
    kw.setdefault("targetRepository", {"service": "ECR", "repositoryName": "team-a/app"})
    if "dockerfileTemplateUri" not in kw:
        kw.setdefault("dockerfileTemplateData", DOCKERFILE)
    r = ib.create_container_recipe(name=name, semanticVersion=version, **kw)
    check_output("CreateContainerRecipe", r)
    return dict(r)


# --- image recipes -------------------------------------------------------------------------


def test_image_recipe_create_get(ib: Any, comps: dict[str, str]) -> None:
    r = image_recipe(
        ib,
        "Web Server",
        description="nginx on debian",
        components=[
            {"componentArn": f"{ARN}:component/configure/1.x.x", "parameters": [{"name": "Port", "value": ["8080"]}]},
            {"componentArn": comps["plain"]},
            {"componentArn": f"{MANAGED}:component/hello-world-linux/x.x.x"},
        ],
        blockDeviceMappings=[{"deviceName": "/dev/vda", "ebs": {"volumeSize": 20, "volumeType": "gp3", "iops": 3000}}],
        workingDirectory="/var/tmp",
        additionalInstanceConfiguration={
            "systemsManagerAgent": {"uninstallAfterBuild": True},
            "userDataOverride": "IyEvYmluL2Jhc2gK",
        },
        amiTags={"os": "debian"},
        tags={"team": "web"},
    )
    arn = r["imageRecipeArn"]
    assert arn == f"{ARN}:image-recipe/web-server/1.0.0"  # no build number for recipes
    assert r["latestVersionReferences"] == {
        "latestVersionArn": f"{ARN}:image-recipe/web-server/x.x.x",
        "latestMajorVersionArn": f"{ARN}:image-recipe/web-server/1.x.x",
        "latestMinorVersionArn": f"{ARN}:image-recipe/web-server/1.0.x",
        "latestPatchVersionArn": f"{ARN}:image-recipe/web-server/1.0.0",
    }
    got = ib.get_image_recipe(imageRecipeArn=arn)
    check_output("GetImageRecipe", got)
    recipe = got["imageRecipe"]
    assert recipe["name"] == "Web Server" and recipe["type"] == "AMI" and recipe["platform"] == "Linux"
    assert recipe["owner"] == ACCOUNT and recipe["version"] == "1.0.0" and recipe["parentImage"] == PARENT
    assert recipe["components"][0]["parameters"] == [{"name": "Port", "value": ["8080"]}]
    assert recipe["workingDirectory"] == "/var/tmp" and recipe["amiTags"] == {"os": "debian"}
    assert recipe["additionalInstanceConfiguration"]["systemsManagerAgent"] == {"uninstallAfterBuild": True}
    assert recipe["tags"] == {"team": "web"} and "dateCreated" in recipe
    # Same name (normalized) and version: recipes are immutable.
    err = fails(ib.create_image_recipe, name="web_server", semanticVersion="1.0.0", parentImage=PARENT)
    assert error_code(err) == "ResourceAlreadyExistsException" and "already exists" in str(err)
    # The wildcard ARN gets the newest version.
    image_recipe(ib, "web-server", "1.2.0")
    newest = ib.get_image_recipe(imageRecipeArn=f"{ARN}:image-recipe/web-server/x.x.x")["imageRecipe"]
    assert newest["version"] == "1.2.0"


def test_image_recipe_wildcard_version_assigns_next(ib: Any) -> None:
    assert image_recipe(ib, "auto", "1.0.x")["imageRecipeArn"].endswith("/auto/1.0.0")
    assert image_recipe(ib, "auto", "1.0.x")["imageRecipeArn"].endswith("/auto/1.0.1")
    assert image_recipe(ib, "auto", "1.x.x")["imageRecipeArn"].endswith("/auto/1.1.0")
    assert image_recipe(ib, "auto", "x.x.x")["imageRecipeArn"].endswith("/auto/2.0.0")
    err = fails(ib.create_image_recipe, name="auto", semanticVersion="1.x.3", parentImage=PARENT)
    assert error_code(err) == "InvalidVersionNumberException"
    err = fails(ib.create_image_recipe, name="auto", semanticVersion="01.0.0", parentImage=PARENT)
    assert error_code(err) == "InvalidVersionNumberException"


def test_image_recipe_component_errors(ib: Any, comps: dict[str, str]) -> None:
    def create(components: list[dict[str, Any]], **kw: Any) -> ClientError:
        return fails(
            ib.create_image_recipe,
            name="broken",
            semanticVersion="1.0.0",
            parentImage=kw.pop("parentImage", PARENT),
            components=components,
            **kw,
        )

    port = [{"name": "Port", "value": ["1"]}]
    err = create([{"componentArn": f"{ARN}:component/nope/1.0.0"}])
    assert error_code(err) == "InvalidRequestException" and "nope" in str(err) and "does not exist" in str(err)
    err = create([{"componentArn": f"{ARN}:component/configure/3.x.x", "parameters": port}])
    assert "does not exist" in str(err)
    # Missing required parameter (Port has no default).
    err = create([{"componentArn": comps["param1"]}])
    assert error_code(err) == "InvalidRequestException" and "Port" in str(err) and "without a default" in str(err)
    # Undeclared parameter.
    err = create([{"componentArn": comps["plain"], "parameters": [{"name": "Colour", "value": ["red"]}]}])
    assert "'Colour' is not declared" in str(err) and "Greeting" in str(err)
    # The same component twice, whatever the version.
    err = create(
        [
            {"componentArn": comps["param1"], "parameters": port},
            {"componentArn": f"{ARN}:component/configure/1.x.x", "parameters": port},
        ]
    )
    assert "only once" in str(err)
    # Platforms must agree.
    err = create([{"componentArn": comps["plain"]}, {"componentArn": comps["windows"]}])
    assert "Windows component" in str(err)
    # A parent image ARN must exist.
    err = create([{"componentArn": comps["plain"]}], parentImage=f"{ARN}:image/missing/1.x.x")
    assert error_code(err) == "InvalidRequestException" and "missing" in str(err)
    err = create([{"componentArn": comps["plain"]}], parentImage=f"{ARN}:component/plain/1.0.0")
    assert "give an image ARN" in str(err)
    # Windows recipes take no SSM agent setting.
    err = create(
        [{"componentArn": comps["windows"]}],
        additionalInstanceConfiguration={"systemsManagerAgent": {"uninstallAfterBuild": False}},
    )
    assert "Windows" in str(err)
    err = fails(
        ib.create_image_recipe,
        name="broken",
        semanticVersion="1.0.0",
        parentImage=PARENT,
        blockDeviceMappings=[{"deviceName": "/dev/vda", "ebs": {"volumeType": "gp2", "throughput": 200}}],
    )
    assert "gp3" in str(err)
    # Nothing above was created.
    assert not ib.list_image_recipes(filters=[{"name": "name", "values": ["broken"]}])["imageRecipeSummaryList"]


def test_image_recipe_wildcard_resolves_newest_component(ib: Any, comps: dict[str, str]) -> None:
    # configure 1.x.x resolves to 1.1.0; a parameter set for it is checked against that build.
    image_recipe(
        ib,
        "newest-comp",
        components=[
            {"componentArn": f"{ARN}:component/configure/x.x.x", "parameters": [{"name": "Port", "value": []}]}
        ],
    )
    err = fails(
        ib.create_image_recipe,
        name="newest-comp",
        semanticVersion="2.0.0",
        parentImage=PARENT,
        components=[{"componentArn": f"{ARN}:component/configure/x.x.x"}],
    )
    assert "component/configure/1.1.0/1" in str(err)


def test_list_image_recipes(ib: Any) -> None:
    for i in range(5):
        image_recipe(ib, f"listed-{i}", parentImage="other-parent")
    seen: list[str] = []
    token = None
    while True:
        kw: dict[str, Any] = {"maxResults": 2, "filters": [{"name": "parentImage", "values": ["other-parent"]}]}
        if token:
            kw["nextToken"] = token
        page = ib.list_image_recipes(**kw)
        check_output("ListImageRecipes", page)
        seen += [s["name"] for s in page["imageRecipeSummaryList"]]
        token = page.get("nextToken")
        if not token:
            break
    assert seen == [f"listed-{i}" for i in range(5)]
    page = ib.list_image_recipes(
        filters=[{"name": "platform", "values": ["Linux"]}, {"name": "name", "values": ["listed-3"]}]
    )
    assert [s["arn"] for s in page["imageRecipeSummaryList"]] == [f"{ARN}:image-recipe/listed-3/1.0.0"]
    assert page["imageRecipeSummaryList"][0]["owner"] == ACCOUNT
    assert ib.list_image_recipes(owner="Amazon")["imageRecipeSummaryList"] == []
    err = fails(ib.list_image_recipes, filters=[{"name": "version", "values": ["1.0.0"]}])
    assert error_code(err) == "InvalidRequestException" and "name, parentImage, platform" in str(err)


def test_image_recipe_policy_tags_delete(ib: Any) -> None:
    arn = image_recipe(ib, "shared-recipe")["imageRecipeArn"]
    err = fails(ib.get_image_recipe_policy, imageRecipeArn=arn)
    assert error_code(err) == "ResourceNotFoundException"
    r = ib.put_image_recipe_policy(imageRecipeArn=arn, policy=POLICY)
    check_output("PutImageRecipePolicy", r)
    assert r["imageRecipeArn"] == arn
    got = ib.get_image_recipe_policy(imageRecipeArn=arn)
    check_output("GetImageRecipePolicy", got)
    assert json.loads(got["policy"]) == json.loads(POLICY)
    err = fails(ib.put_image_recipe_policy, imageRecipeArn=arn, policy='{"Statement": "no"}')
    assert error_code(err) == "InvalidParameterValueException"
    ib.tag_resource(resourceArn=arn, tags={"env": "dev"})
    assert ib.list_tags_for_resource(resourceArn=arn)["tags"] == {"env": "dev"}
    err = fails(ib.delete_image_recipe, imageRecipeArn=f"{ARN}:image-recipe/shared-recipe/x.x.x")
    assert error_code(err) == "InvalidRequestException"
    r = ib.delete_image_recipe(imageRecipeArn=arn)
    check_output("DeleteImageRecipe", r)
    assert r["imageRecipeArn"] == arn
    assert missing(fails(ib.get_image_recipe, imageRecipeArn=arn))
    assert missing(fails(ib.delete_image_recipe, imageRecipeArn=arn))


def test_image_recipe_idempotency_and_dry_run(ib: Any) -> None:
    a = ib.create_image_recipe(name="idem", semanticVersion="1.0.0", parentImage=PARENT, clientToken="rcp-1")
    b = ib.create_image_recipe(name="idem", semanticVersion="1.0.0", parentImage=PARENT, clientToken="rcp-1")
    assert a["imageRecipeArn"] == b["imageRecipeArn"] and b["clientToken"] == "rcp-1"
    err = fails(ib.create_image_recipe, name="idem", semanticVersion="2.0.0", parentImage=PARENT, clientToken="rcp-1")
    assert error_code(err) == "IdempotentParameterMismatchException"
    err = fails(ib.create_image_recipe, name="dry", semanticVersion="1.0.0", parentImage=PARENT, dryRun=True)
    assert error_code(err) == "DryRunOperationException"
    assert missing(fails(ib.get_image_recipe, imageRecipeArn=f"{ARN}:image-recipe/dry/1.0.0"))
    # dryRun still validates: a bad request reports its error, not DryRunOperation.
    err = fails(
        ib.create_image_recipe,
        name="dry",
        semanticVersion="1.0.0",
        parentImage=PARENT,
        components=[{"componentArn": f"{ARN}:component/nope/1.0.0"}],
        dryRun=True,
    )
    assert error_code(err) == "InvalidRequestException"


# --- container recipes ---------------------------------------------------------------------


def test_container_recipe_create_get(ib: Any, comps: dict[str, str]) -> None:
    r = container_recipe(
        ib,
        "App Image",
        description="the app",
        components=[{"componentArn": comps["param1"], "parameters": [{"name": "Port", "value": ["80"]}]}],
        instanceConfiguration={"image": "debian-12-docker-host", "blockDeviceMappings": [{"deviceName": "/dev/vda"}]},
        workingDirectory="/build",
        platformOverride="Linux",
        imageOsVersionOverride="Debian 12",
        kmsKeyId="local-key",
        tags={"team": "app"},
    )
    arn = r["containerRecipeArn"]
    assert arn == f"{ARN}:container-recipe/app-image/1.0.0"
    assert r["latestVersionReferences"]["latestMajorVersionArn"] == f"{ARN}:container-recipe/app-image/1.x.x"
    got = ib.get_container_recipe(containerRecipeArn=arn)
    check_output("GetContainerRecipe", got)
    recipe = got["containerRecipe"]
    assert recipe["containerType"] == "DOCKER" and recipe["platform"] == "Linux" and recipe["version"] == "1.0.0"
    assert recipe["dockerfileTemplateData"] == DOCKERFILE and recipe["parentImage"] == "debian:bookworm"
    assert recipe["targetRepository"] == {"service": "ECR", "repositoryName": "team-a/app"}
    assert recipe["instanceConfiguration"]["image"] == "debian-12-docker-host"
    assert recipe["workingDirectory"] == "/build" and recipe["tags"] == {"team": "app"}
    err = fails(
        ib.create_container_recipe,
        name="app_image",
        semanticVersion="1.0.0",
        containerType="DOCKER",
        parentImage="debian:bookworm",
        targetRepository={"service": "ECR", "repositoryName": "app"},
        dockerfileTemplateData=DOCKERFILE,
    )
    assert error_code(err) == "ResourceAlreadyExistsException"


def test_container_recipe_template_from_uri(ib: Any, tmp_path: Any) -> None:
    path = tmp_path / "Dockerfile.template"
    path.write_text('FROM {{{ imagebuilder:parentImage }}}\nCMD ["true"]\n')
    arn = container_recipe(ib, "from-uri", dockerfileTemplateUri=f"file://{path}")["containerRecipeArn"]
    path.write_text("changed later")  # read once at create time
    recipe = ib.get_container_recipe(containerRecipeArn=arn)["containerRecipe"]
    assert recipe["dockerfileTemplateData"].startswith("FROM {{{ imagebuilder:parentImage }}}")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dockerfileTemplateData": "RUN echo no base\n"}, "no FROM"),
        ({"dockerfileTemplateData": "FROM x\n{{{ imagebuilder:parent }}}\n"}, "unknown placeholder"),
        (
            {"dockerfileTemplateData": "FROM {{{ imagebuilder:parentImage }}}\n{{{ imagebuilder:components }}}\n"},
            "never stages",
        ),
        ({"dockerfileTemplateUri": "file:///nonexistent/Dockerfile"}, "cannot read"),
        ({"dockerfileTemplateUri": "file:///tmp/x", "dockerfileTemplateData": DOCKERFILE}, "exactly one"),
        ({"targetRepository": {"service": "ECR", "repositoryName": "registry.example.com/app"}}, "registry host"),
        ({"targetRepository": {"service": "ECR", "repositoryName": "App"}}, "not a valid repository name"),
        ({"platformOverride": "macOS"}, "Linux and Windows"),
        ({"parentImage": f"{ARN}:image/nothing/x.x.x"}, "does not name an image"),
        ({"components": [{"componentArn": f"{ARN}:component/configure/1.0.0"}]}, "Port"),
    ],
)
def test_container_recipe_errors(ib: Any, comps: dict[str, str], change: dict[str, Any], message: str) -> None:
    kw: dict[str, Any] = {
        "name": "bad-container",
        "semanticVersion": "1.0.0",
        "containerType": "DOCKER",
        "parentImage": "debian:bookworm",
        "targetRepository": {"service": "ECR", "repositoryName": "app"},
        "dockerfileTemplateData": DOCKERFILE,
    }
    if "dockerfileTemplateUri" in change and "dockerfileTemplateData" not in change:
        del kw["dockerfileTemplateData"]
    kw.update(change)
    err = fails(ib.create_container_recipe, **kw)
    assert error_code(err) == "InvalidRequestException", err
    assert message in str(err)


def test_container_recipe_needs_components_placeholder(ib: Any, comps: dict[str, str]) -> None:
    err = fails(
        ib.create_container_recipe,
        name="no-placeholder",
        semanticVersion="1.0.0",
        containerType="DOCKER",
        parentImage="debian:bookworm",
        targetRepository={"service": "ECR", "repositoryName": "app"},
        dockerfileTemplateData="FROM {{{ imagebuilder:parentImage }}}\n",
        components=[{"componentArn": comps["plain"]}],
    )
    assert "would never run" in str(err)


def test_list_container_recipes_policy_delete(ib: Any) -> None:
    arns = [container_recipe(ib, "listed-container", f"1.{i}.0")["containerRecipeArn"] for i in range(3)]
    page = ib.list_container_recipes(
        filters=[{"name": "containerType", "values": ["DOCKER"]}, {"name": "name", "values": ["listed-container"]}],
        maxResults=2,
    )
    check_output("ListContainerRecipes", page)
    assert [s["arn"] for s in page["containerRecipeSummaryList"]] == arns[:2] and page["nextToken"]
    rest = ib.list_container_recipes(
        filters=[{"name": "containerType", "values": ["DOCKER"]}, {"name": "name", "values": ["listed-container"]}],
        maxResults=2,
        nextToken=page["nextToken"],
    )
    assert [s["arn"] for s in rest["containerRecipeSummaryList"]] == arns[2:]
    assert rest["containerRecipeSummaryList"][0]["platform"] == "Linux"
    err = fails(ib.list_container_recipes, owner="ThirdParty")
    assert error_code(err) == "InvalidRequestException"
    r = ib.put_container_recipe_policy(
        containerRecipeArn=arns[0], policy=POLICY.replace("GetImageRecipe", "GetContainerRecipe")
    )
    check_output("PutContainerRecipePolicy", r)
    got = ib.get_container_recipe_policy(containerRecipeArn=arns[0])
    check_output("GetContainerRecipePolicy", got)
    assert json.loads(got["policy"])["Statement"][0]["Effect"] == "Allow"
    r = ib.delete_container_recipe(containerRecipeArn=arns[0])
    check_output("DeleteContainerRecipe", r)
    assert missing(fails(ib.get_container_recipe, containerRecipeArn=arns[0]))


def test_container_recipe_dry_run(ib: Any) -> None:
    err = fails(
        ib.create_container_recipe,
        name="dry-container",
        semanticVersion="1.0.0",
        containerType="DOCKER",
        parentImage="debian:bookworm",
        targetRepository={"service": "ECR", "repositoryName": "app"},
        dockerfileTemplateData=DOCKERFILE,
        dryRun=True,
    )
    assert error_code(err) == "DryRunOperationException"
    assert (
        ib.list_container_recipes(filters=[{"name": "name", "values": ["dry-container"]}])["containerRecipeSummaryList"]
        == []
    )


# --- parent images that are Image Builder images -------------------------------------------


@pytest.fixture(scope="module")
def images(server: Server) -> dict[str, str]:
    """Image records written straight into the server's store, the way builds and managed
    parent image registration record them (CreateImage is another family's work)."""
    store = Store(f"sqlite:///{server.data_dir.resolve() / 'imagebuilder.sqlite'}")
    made = {}
    rows = [
        ("debian", "aws", "debian-12-x86", "1.0.0", "AMI", "Linux", "AVAILABLE"),
        ("debian-failed", "aws", "debian-12-x86", "1.1.0", "AMI", "Linux", "FAILED"),
        ("windows", ACCOUNT, "win-base", "1.0.0", "AMI", "Windows", "AVAILABLE"),
        ("container", ACCOUNT, "debian-base", "2.0.0", "DOCKER", "Linux", "AVAILABLE"),
    ]
    with store.transaction(write=True) as tx:
        for key, account, name, version, kind, platform, status in rows:
            arn = f"arn:aws:imagebuilder:us-east-1:{account}:image/{name}/{version}/1"
            body = {
                "arn": arn,
                "name": name,
                "version": version,
                "type": kind,
                "platform": platform,
                "osVersion": "Debian 12" if platform == "Linux" else "Microsoft Windows Server 2022",
                "state": {"status": status},
            }
            tx.insert(Record(arn=arn, kind="image", account=account, name=name, version=version, build=1, body=body))
            made[key] = arn
    store.dispose()
    return made


def test_parent_image_arns(ib: Any, comps: dict[str, str], images: dict[str, str]) -> None:
    # The wildcard skips the FAILED 1.1.0 build and finds 1.0.0; the platform comes from it.
    r = image_recipe(ib, "on-managed-parent", parentImage=f"{MANAGED}:image/debian-12-x86/x.x.x")
    recipe = ib.get_image_recipe(imageRecipeArn=r["imageRecipeArn"])["imageRecipe"]
    assert recipe["platform"] == "Linux" and recipe["parentImage"].endswith("debian-12-x86/x.x.x")
    err = fails(ib.create_image_recipe, name="parent-1", semanticVersion="1.0.0", parentImage=images["debian-failed"])
    assert "FAILED" in str(err)
    err = fails(ib.create_image_recipe, name="parent-2", semanticVersion="1.0.0", parentImage=images["container"])
    assert "container image" in str(err)
    # A Windows parent decides the platform, so a Linux component no longer fits.
    err = fails(
        ib.create_image_recipe,
        name="parent-3",
        semanticVersion="1.0.0",
        parentImage=images["windows"],
        components=[{"componentArn": comps["plain"]}],
    )
    assert "Linux component" in str(err) and "Windows" in str(err)
    win = image_recipe(ib, "on-windows", parentImage=images["windows"], components=[{"componentArn": comps["windows"]}])
    assert ib.get_image_recipe(imageRecipeArn=win["imageRecipeArn"])["imageRecipe"]["platform"] == "Windows"
    # Container recipes build on container images, without platform or OS overrides.
    made = container_recipe(ib, "on-image-parent", parentImage=f"{ARN}:image/debian-base/2.x.x")
    got = ib.get_container_recipe(containerRecipeArn=made["containerRecipeArn"])["containerRecipe"]
    assert got["platform"] == "Linux"
    err = fails(
        ib.create_container_recipe,
        name="parent-4",
        semanticVersion="1.0.0",
        containerType="DOCKER",
        parentImage=images["container"],
        platformOverride="Linux",
        targetRepository={"service": "ECR", "repositoryName": "app"},
        dockerfileTemplateData=DOCKERFILE,
    )
    assert "platformOverride" in str(err)
    err = fails(
        ib.create_container_recipe,
        name="parent-5",
        semanticVersion="1.0.0",
        containerType="DOCKER",
        parentImage=images["debian"],
        targetRepository={"service": "ECR", "repositoryName": "app"},
        dockerfileTemplateData=DOCKERFILE,
    )
    assert "machine image" in str(err)
