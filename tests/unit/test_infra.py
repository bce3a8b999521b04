"""Structural checks of infra/ (Bicep), azure.yaml and .funcignore.

The official Bicep compiler (`bicep build` / `bicep lint`) cannot be installed here: it ships
as a .NET binary through NuGet and GitHub releases, which these machines do not reach; npm's
`bicep-node` only downloads that binary, and neither PyPI nor Debian package it. So this file
does what can be done without it:

- every .bicep file is parsed by pycep-parser, a Bicep grammar (lark) for Python, so a syntax
  error fails here (a broken copy is shown to fail);
- braces, brackets and parentheses balance outside strings and comments;
- every module path exists, every parameter passed to a module is declared there, and every
  module parameter without a default is passed; every declared parameter is used;
- every resource type the deployment needs is there, with an API version of the form
  YYYY-MM-DD[-preview];
- every app setting the product reads (the aliases of shared.config.Settings, imported) is set
  on the Function App, except the few documented below; secrets are Key Vault references;
- no secret literal anywhere in Bicep; secret parameters are @secure() with empty defaults;
- each role-definition GUID is the built-in role its comment names, and the identity holds
  exactly the least-privilege set;
- the Flex Consumption shape (FC1 plan, functionAppConfig, Python 3.12, identity-based
  deployment storage, a maximum scale Flex accepts, one always-ready HTTP instance), shared keys off, Key Vault in RBAC mode, local auth off on App Insights;
- azure.yaml parses and points azd at infra/main.bicep and service ``api``;
  main.parameters.json names only real parameters and uses azd's substitution;
- .funcignore keeps dev-only folders out of the package.

Each check is a function returning a list of problems, so the tests can also show that a
mutated input is caught.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pycep import BicepParser
from pydantic import AliasChoices

from local.host_config import DEPLOYED_WORKER_THREADS, HostConfig
from shared.config import Settings
from shared.mail.outbox import OUTBOX_QUEUE
from shared.sync.crm_routing import CRM_CHANGES_QUEUE
from shared.sync.held_notifications import GRAPH_NOTIFICATIONS_QUEUE
from shared.sync.jobs import SYNC_QUEUES

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
FUNCTION_APP = INFRA / "modules" / "functionapp.bicep"
RBAC = INFRA / "modules" / "rbac.bicep"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

_PARSER = BicepParser(cache=False)

# Settings the product reads that are deliberately NOT set in Azure, and why.
NOT_SET_IN_AZURE = {
    # A connection string carries the account key; Azure uses the identity-based
    # AzureWebJobsStorage__* settings instead (shared keys are disabled on the account).
    "AzureWebJobsStorage",
    # Only for the local emulators' CA; in Azure the system trust store is right.
    "OUTBOUND_CA_BUNDLE",
    # The initial sync's caps and page: their defaults are the SPEC's (R3.5, R4.6) and the CRM's
    # limit; smaller values serve tests of the same code path.
    "CALENDAR_INITIAL_CAP", "CONTACTS_INITIAL_CAP", "INITIAL_PAGE_SIZE",
}
# Settings holding secrets: in Azure, only ever Key Vault references.
SECRET_SETTINGS = {"TOKEN_ENCRYPTION_KEY", "SESSION_SECRET", "ENTRA_CLIENT_SECRET", "CRM_CLIENT_SECRET"}
# What the Functions host itself needs for identity-based storage and telemetry.
HOST_SETTINGS = {
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "PYTHON_THREADPOOL_THREAD_COUNT",
}
# Flex Consumption refuses these (the runtime comes from functionAppConfig).
FORBIDDEN_ON_FLEX = {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE"}

# Built-in Azure role definitions (ids are the same in every tenant).
BUILT_IN_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}
# The Function App identity's roles: what it needs and nothing more (no Owner/Contributor).
IDENTITY_ROLES = {
    "Storage Blob Data Owner", "Storage Queue Data Contributor", "Storage Table Data Contributor",
    "Key Vault Secrets User", "Monitoring Metrics Publisher",
}

REQUIRED_RESOURCE_TYPES = {
    "Microsoft.Resources/resourceGroups",
    "Microsoft.ManagedIdentity/userAssignedIdentities",
    "Microsoft.OperationalInsights/workspaces",
    "Microsoft.Insights/components",
    "Microsoft.Storage/storageAccounts",
    "Microsoft.Storage/storageAccounts/blobServices/containers",
    "Microsoft.Storage/storageAccounts/queueServices/queues",
    "Microsoft.KeyVault/vaults",
    "Microsoft.KeyVault/vaults/secrets",
    "Microsoft.Authorization/roleAssignments",
    "Microsoft.Web/serverfarms",
    "Microsoft.Web/sites",
    "Microsoft.Web/sites/config",
}
API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


# --- helpers -------------------------------------------------------------------------------


def parse(text: str) -> dict[str, Any]:
    return _PARSER.parse(text=text)


def strip_comments_and_strings(text: str) -> str:
    """Bicep without comments and with string contents blanked (interpolations kept)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif text.startswith("'''", i):
            end = text.find("'''", i + 3)
            out.append("''")
            i = n if end < 0 else end + 3
        elif text[i] == "'":
            j, pieces = i + 1, []
            while j < n and text[j] != "'":
                if text[j] == "\\":
                    j += 2
                    continue
                if text.startswith("${", j):  # keep interpolated expressions: they use params
                    depth, k = 1, j + 2
                    while k < n and depth:
                        depth += {"{": 1, "}": -1}.get(text[k], 0)
                        k += 1
                    pieces.append(" " + text[j + 2 : k - 1] + " ")
                    j = k
                    continue
                j += 1
            out.append("'" + "".join(pieces) + "'")
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def balance_problems(text: str) -> list[str]:
    pairs, stack, problems = {")": "(", "]": "[", "}": "{"}, [], []
    for line_no, line in enumerate(strip_comments_and_strings(text).splitlines(), 1):
        for ch in line:
            if ch in "([{":
                stack.append((ch, line_no))
            elif ch in pairs:
                if not stack or stack[-1][0] != pairs[ch]:
                    problems.append(f"line {line_no}: unmatched {ch!r}")
                else:
                    stack.pop()
    problems += [f"line {line_no}: {ch!r} never closed" for ch, line_no in stack]
    return problems


def unused_param_problems(text: str) -> list[str]:
    code = strip_comments_and_strings(text)
    problems = []
    for name in parse(text).get("parameters", {}):
        uses = len(re.findall(rf"(?<![\w.]){re.escape(name)}\b", code))
        if uses < 2:  # the declaration itself is one
            problems.append(f"param {name} is never used")
    return problems


def module_problems(path: Path, text: str) -> list[str]:
    problems = []
    for name, module in parse(text).get("modules", {}).items():
        target = (path.parent / module["detail"]["path"]).resolve()
        if not target.is_file():
            problems.append(f"module {name}: {module['detail']['path']} does not exist")
            continue
        declared = parse(target.read_text()).get("parameters", {})
        passed = set((module["config"].get("params") or {}).keys())
        problems += [f"module {name}: passes undeclared param {p}" for p in sorted(passed - set(declared))]
        required = {p for p, d in declared.items() if d.get("default") is None}
        problems += [f"module {name}: required param {p} not passed" for p in sorted(required - passed)]
    return problems


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's properties; pycep nests those of a conditional resource one level down."""
    config = resource["config"]
    return config["config"] if "condition" in config and "config" in config else config


def resources_of(paths: list[Path]) -> list[dict[str, Any]]:
    found = []
    for path in paths:
        for name, resource in parse(path.read_text()).get("resources", {}).items():
            found.append({"file": path.name, "name": name, **resource})
    return found


def resource_type_problems(resources: list[dict[str, Any]]) -> list[str]:
    problems = [
        f"{r['file']}: {r['name']} has API version {r['api_version']!r}"
        for r in resources
        if not API_VERSION.match(str(r.get("api_version", "")))
    ]
    present = {r["type"] for r in resources}
    problems += [f"no {t} resource" for t in sorted(REQUIRED_RESOURCE_TYPES - present)]
    return problems


def product_setting_names() -> set[str]:
    names = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        names.update(alias.choices if isinstance(alias, AliasChoices) else [alias] if alias else [])
    return {str(n) for n in names}


def app_settings(main_text: str, function_app_text: str) -> dict[str, Any]:
    """The Function App's app settings: its own literal object and main's productSettings."""
    config = next(
        r for r in parse(function_app_text)["resources"].values() if r["type"] == "Microsoft.Web/sites/config"
    )["config"]
    properties = config["properties"]
    settings: dict[str, Any] = {}
    if "function" in properties and properties["function"]["type"] == "union":
        for arg in properties["function"]["parameters"].values():
            if isinstance(arg, dict):
                settings.update(arg)
    else:
        settings.update(properties)
    module = next(m for m in parse(main_text)["modules"].values() if m["detail"]["path"].endswith("functionapp.bicep"))
    settings.update(module["config"]["params"].get("productSettings") or {})
    return settings


def app_setting_problems(main_text: str, function_app_text: str) -> list[str]:
    settings = app_settings(main_text, function_app_text)
    wanted = (product_setting_names() - NOT_SET_IN_AZURE) | HOST_SETTINGS
    problems = [f"app setting {name} is not set" for name in sorted(wanted - set(settings))]
    problems += [f"app setting {name} must not be set on Flex" for name in sorted(FORBIDDEN_ON_FLEX & set(settings))]
    problems += [f"app setting {name} set although documented as not set in Azure"
                 for name in sorted(NOT_SET_IN_AZURE & set(settings))]
    for name in sorted(SECRET_SETTINGS):
        value = settings.get(name)
        if not (isinstance(value, str) and value.startswith("@Microsoft.KeyVault(SecretUri=")):
            problems.append(f"app setting {name} is not a Key Vault reference: {value!r}")
    if settings.get("AzureWebJobsStorage__credential") != "managedidentity":
        problems.append("AzureWebJobsStorage__credential is not managedidentity")
    return problems


SECRET_LITERALS = [
    (re.compile(r"AccountKey=", re.I), "a storage account key"),
    (re.compile(r"listKeys\(|listConnectionStrings\("), "a key read back into the template"),
    (re.compile(r"InstrumentationKey=[0-9a-f-]{8}", re.I), "an instrumentation key"),
    (re.compile(r"SharedAccessSignature=|[?&]sig=", re.I), "a SAS token"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"), "a JWT"),
    (re.compile(r"['\"][A-Za-z0-9_-]{43}=['\"]"), "a Fernet key"),
    (re.compile(r"[A-Za-z0-9_-]{3}\dQ~[A-Za-z0-9_.~-]{30,}"), "an Entra ID client secret"),
    (re.compile(r"\b1000\.[0-9a-f]{32,}\b"), "a Zoho client secret or token"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
]
SECRETISH_PARAM = re.compile(r"secret|password|key$|token", re.I)
NOT_SECRET_PARAMS = {"tokenEncryptionKeyUri"}  # URIs of secrets, not secrets


def secret_problems(path: Path, text: str) -> list[str]:
    problems = [f"{path.name}: {what}" for pattern, what in SECRET_LITERALS if pattern.search(text)]
    for name, param in parse(text).get("parameters", {}).items():
        secure = any(d.get("type") == "secure" for d in param.get("decorators", []))
        if SECRETISH_PARAM.search(name) and not name.endswith("Uri") and name not in NOT_SECRET_PARAMS and not secure:
            problems.append(f"{path.name}: param {name} looks secret but is not @secure()")
        if secure and param.get("default") not in ("", None):
            problems.append(f"{path.name}: @secure() param {name} has a default value")
    for name in parse(text).get("outputs", {}):
        if re.search(r"secret|password", name, re.I) and not name.endswith("Uri"):
            problems.append(f"{path.name}: output {name} may expose a secret")
    return problems


GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def role_problems(rbac_text: str) -> list[str]:
    problems = []
    for line_no, line in enumerate(rbac_text.splitlines(), 1):
        for guid in GUID.findall(line):
            role = BUILT_IN_ROLES.get(guid)
            if role is None:
                problems.append(f"line {line_no}: {guid} is not a known built-in role")
            elif role not in line:
                problems.append(f"line {line_no}: {guid} is {role}, but the comment does not say so")
    parsed = parse(rbac_text)
    roles = parsed["variables"]["roles"]["value"]
    assigned_to_identity = set()
    for resource in parsed["resources"].values():
        if resource["type"] != "Microsoft.Authorization/roleAssignments":
            continue
        props = body(resource)["properties"]
        definition = json.dumps(props["roleDefinitionId"])
        keys = [k for k in roles if re.search(rf"\b{k}\b", definition)]
        if len(keys) != 1:
            problems.append(f"{definition} does not name one entry of roles")
            continue
        if props["principalId"] == "identityPrincipalId":
            assigned_to_identity.add(BUILT_IN_ROLES.get(roles[keys[0]], roles[keys[0]]))
    if assigned_to_identity != IDENTITY_ROLES:
        problems.append(f"the identity holds {sorted(assigned_to_identity)}, expected {sorted(IDENTITY_ROLES)}")
    return problems


# --- tests ---------------------------------------------------------------------------------


def test_infra_has_the_expected_files() -> None:
    names = {p.relative_to(INFRA).as_posix() for p in BICEP_FILES}
    assert {"main.bicep", "modules/functionapp.bicep", "modules/storage.bicep", "modules/keyvault.bicep",
            "modules/monitoring.bicep", "modules/identity.bicep", "modules/rbac.bicep"} <= names
    assert "placeholder" not in (INFRA / "README.md").read_text().lower()


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_parses(path: Path) -> None:
    parse(path.read_text())


def test_a_syntax_error_is_caught() -> None:
    broken = MAIN.read_text().replace("targetScope = 'subscription'", "targetScope = = 'subscription'", 1)
    with pytest.raises(Exception):  # noqa: B017 - lark raises several kinds
        parse(broken)


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_brackets_balance(path: Path) -> None:
    assert balance_problems(path.read_text()) == []


def test_unbalanced_brackets_are_caught() -> None:
    assert balance_problems("var a = {\n  b: [1, 2\n}\n")
    assert balance_problems("var a = '{' // }\n") == []


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_every_param_is_used(path: Path) -> None:
    assert unused_param_problems(path.read_text()) == []


def test_an_unused_param_is_caught() -> None:
    assert unused_param_problems("param used string\nparam idle string\noutput o string = used\n") == [
        "param idle is never used"
    ]


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_modules_exist_and_get_their_params(path: Path) -> None:
    assert module_problems(path, path.read_text()) == []


def test_a_missing_module_or_param_is_caught() -> None:
    text = MAIN.read_text()
    assert module_problems(MAIN, text.replace("'modules/identity.bicep'", "'modules/nothing.bicep'"))
    assert module_problems(MAIN, text.replace("    planName: 'plan-${resourceToken}'\n", "", 1))
    assert module_problems(MAIN, text.replace("    planName: ", "    plannName: ", 1))


def test_required_resource_types_with_dated_api_versions() -> None:
    assert resource_type_problems(resources_of(BICEP_FILES)) == []


def test_a_missing_resource_type_is_caught() -> None:
    resources = [r for r in resources_of(BICEP_FILES) if r["type"] != "Microsoft.KeyVault/vaults"]
    assert "no Microsoft.KeyVault/vaults resource" in resource_type_problems(resources)
    assert resource_type_problems([{**resources[0], "api_version": "latest"}])


def test_every_setting_the_product_reads_is_set() -> None:
    assert product_setting_names() >= NOT_SET_IN_AZURE  # the exemptions name real settings
    assert app_setting_problems(MAIN.read_text(), FUNCTION_APP.read_text()) == []


def test_a_missing_or_literal_setting_is_caught() -> None:
    main, app = MAIN.read_text(), FUNCTION_APP.read_text()
    assert "app setting ENTRA_CLIENT_ID is not set" in app_setting_problems(
        main.replace("      ENTRA_CLIENT_ID: entraClientId\n", ""), app
    )
    literal = app.replace("'@Microsoft.KeyVault(SecretUri=${sessionSecretUri})'", "sessionSecretUri")
    assert any("SESSION_SECRET is not a Key Vault reference" in p for p in app_setting_problems(main, literal))
    flex = app.replace("      PUBLIC_BASE_URL:", "      FUNCTIONS_WORKER_RUNTIME: 'python'\n      PUBLIC_BASE_URL:")
    assert "app setting FUNCTIONS_WORKER_RUNTIME must not be set on Flex" in app_setting_problems(main, flex)


def test_key_vault_references_resolve_as_the_user_assigned_identity() -> None:
    site = next(r for r in resources_of([FUNCTION_APP]) if r["type"] == "Microsoft.Web/sites")
    properties = site["config"]["properties"]
    assert properties["keyVaultReferenceIdentity"] == "identityId"
    assert site["config"]["identity"]["type"] == "UserAssigned"


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_no_secret_literals(path: Path) -> None:
    assert secret_problems(path, path.read_text()) == []


def test_secret_literals_are_caught() -> None:
    fake_fernet = "'" + "A" * 43 + "='"
    assert secret_problems(MAIN, MAIN.read_text() + f"\nvar k = {fake_fernet}\n")
    assert secret_problems(MAIN, "param clientSecret string = ''\n")  # not @secure()
    assert secret_problems(MAIN, "@secure()\nparam clientSecret string = 'hunter2'\n")
    assert secret_problems(MAIN, "var c = 'DefaultEndpointsProtocol=https;AccountKey=abc'\n")


def test_role_guids_are_the_built_in_roles_named_and_least_privilege() -> None:
    assert role_problems(RBAC.read_text()) == []


def test_a_wrong_role_guid_or_extra_role_is_caught() -> None:
    text = RBAC.read_text()
    swapped = text.replace("'4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User",
                           "'b86a8fe4-44ce-4948-aee5-eccb2c155cd7' // Key Vault Secrets User")
    assert role_problems(swapped)
    owner = text.replace("'974c5e8b-45b9-4653-ba55-5f855dd0fb88'", "'8e3af657-a8ff-443c-a75c-2fe8c4bcb635'")
    assert role_problems(owner)  # Owner is no built-in role we accept


def test_flex_consumption_shape() -> None:
    resources = {r["type"]: r for r in resources_of(BICEP_FILES) if not r.get("existing")}
    plan = resources["Microsoft.Web/serverfarms"]["config"]
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"} and plan["properties"]["reserved"] is True
    site = resources["Microsoft.Web/sites"]["config"]
    assert site["kind"] == "functionapp,linux"
    flex = site["properties"]["functionAppConfig"]
    assert flex["runtime"] == {"name": "python", "version": "3.12"}
    assert flex["deployment"]["storage"]["type"] == "blobContainer"
    assert flex["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    assert set(flex["scaleAndConcurrency"]) >= {"maximumInstanceCount", "instanceMemoryMB"}
    storage = resources["Microsoft.Storage/storageAccounts"]["config"]["properties"]
    assert storage["allowSharedKeyAccess"] is False and storage["allowBlobPublicAccess"] is False
    vault = resources["Microsoft.KeyVault/vaults"]["config"]["properties"]
    assert vault["enableRbacAuthorization"] is True
    insights = resources["Microsoft.Insights/components"]["config"]["properties"]
    assert insights["DisableLocalAuth"] is True


def test_queues_are_the_products() -> None:
    queues = parse(MAIN.read_text())["variables"]["queueNames"]["value"]
    assert sorted(queues) == sorted([OUTBOX_QUEUE, *SYNC_QUEUES, CRM_CHANGES_QUEUE, GRAPH_NOTIFICATIONS_QUEUE])


# Issue 21: 100 members' initial syncs progress together on one instance.
MEMBERS_AT_ONCE = 100


def concurrency_problems(host: HostConfig, worker_threads: object) -> list[str]:
    """host.json's queue settings against the worker's threads (the reasons are beside
    PYTHON_THREADPOOL_THREAD_COUNT in functionapp.bicep)."""
    per_function = host.queues.batch_size + host.queues.threshold
    problems = []
    if per_function < MEMBERS_AT_ONCE:
        problems.append(f"one queue function runs {per_function} messages at once per instance, not {MEMBERS_AT_ONCE}")
    if not (isinstance(worker_threads, str) and worker_threads.isdigit()):
        return [*problems, f"PYTHON_THREADPOOL_THREAD_COUNT is not set to a number: {worker_threads!r}"]
    if int(worker_threads) <= per_function:
        problems.append(f"{worker_threads} worker threads: a full sync-bulk ({per_function}) leaves none for sync-jobs")
    if int(worker_threads) != DEPLOYED_WORKER_THREADS:
        problems.append(f"the local host runs {DEPLOYED_WORKER_THREADS} worker threads, Azure {worker_threads}")
    return problems


def test_a_burst_of_bulk_steps_leaves_worker_threads_for_the_others() -> None:
    threads = app_settings(MAIN.read_text(), FUNCTION_APP.read_text()).get("PYTHON_THREADPOOL_THREAD_COUNT")
    assert concurrency_problems(HostConfig.load(ROOT / "host.json"), threads) == []


def test_too_few_worker_threads_or_messages_at_once_are_caught() -> None:
    host = HostConfig.load(ROOT / "host.json")
    per_function = host.queues.batch_size + host.queues.threshold
    assert concurrency_problems(host, str(per_function))  # nothing left for the other queue
    assert concurrency_problems(host, None)  # the worker's default: a handful of threads
    assert concurrency_problems(host, str(DEPLOYED_WORKER_THREADS + 1))  # the local host would differ
    from dataclasses import replace

    assert concurrency_problems(replace(host, queues=replace(host.queues, batch_size=16, new_batch_threshold=8)),
                                str(DEPLOYED_WORKER_THREADS))


def test_azure_yaml_deploys_this_folder_with_infra_main_bicep() -> None:
    spec = yaml.safe_load((ROOT / "azure.yaml").read_text())
    infra = spec.get("infra", {})
    assert (ROOT / infra.get("path", "infra") / f"{infra.get('module', 'main')}.bicep") == MAIN
    assert infra.get("provider", "bicep") == "bicep"
    assert spec["services"]["api"] == {"project": ".", "language": "python", "host": "function"}
    # azd finds the app by this tag
    assert "'azd-service-name': 'api'" in FUNCTION_APP.read_text()


def test_parameters_file_uses_azd_substitution_and_real_params() -> None:
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = parse(MAIN.read_text())["parameters"]
    assert set(values) <= set(declared)
    assert {p for p, d in declared.items() if d.get("default") is None} <= set(values)
    assert values["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert values["location"]["value"] == "${AZURE_LOCATION}"


def test_funcignore_keeps_dev_only_files_out_of_the_package() -> None:
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".funcignore").read_text().splitlines()}
    assert {"tests", "local", "emulators", "bench", "node_modules", ".venv", ".local", "infra", ".azure"} <= ignored
    # ... and never the app itself
    assert not ignored & {"shared", "functions", "function_app.py", "host.json", "requirements.txt"}


def test_deploy_guide_names_the_real_redirect_routes_and_crm_scopes() -> None:
    """docs/deploy.md tells people what to register: it must follow the code."""
    from shared.crm.oauth import CRM_SCOPES

    guide = (ROOT / "docs" / "deploy.md").read_text()
    routes = re.findall(r'route="([^"]*callback)"', (ROOT / "functions" / "install.py").read_text())
    assert sorted(routes) == ["accounts/associate/callback", "auth/admin-consent/callback", "auth/callback"]
    for route in routes:
        assert f"{{base}}/api/{route}`" in guide
    for scope in CRM_SCOPES:
        assert f"`{scope}`" in guide
    for permission in ("Calendars.ReadWrite", "Contacts.ReadWrite", "Mail.Send", "User.Read.All"):
        assert f"`{permission}`" in guide


# --- issue 22: a deployment that works the second time -----------------------------------

KEY_VAULT = INFRA / "modules" / "keyvault.bicep"
FLEX_LOWEST_MAXIMUM, FLEX_HIGHEST_MAXIMUM = 40, 1000  # Flex Consumption's bounds on maximumInstanceCount


def _decorator(param: dict[str, Any], kind: str) -> Any:
    return next((d["argument"] for d in param.get("decorators", []) if d["type"] == kind), None)


def scale_problems(main_text: str, function_app_text: str) -> list[str]:
    """maximumInstanceCount within what Flex accepts, wherever it is a parameter; one HTTP
    instance always ready."""
    problems = []
    for where, text in (("main.bicep", main_text), ("functionapp.bicep", function_app_text)):
        param = parse(text)["parameters"].get("maximumInstanceCount")
        if param is None:
            problems.append(f"{where}: no maximumInstanceCount parameter")
            continue
        low, high = _decorator(param, "min_value"), _decorator(param, "max_value")
        if low is None or low < FLEX_LOWEST_MAXIMUM:
            problems.append(f"{where}: maximumInstanceCount accepts {low}, below Flex's lowest maximum (40)")
        if high is None or high > FLEX_HIGHEST_MAXIMUM:
            problems.append(f"{where}: maximumInstanceCount accepts {high}, above Flex's 1000")
        if not FLEX_LOWEST_MAXIMUM <= param.get("default", 0) <= FLEX_HIGHEST_MAXIMUM:
            problems.append(f"{where}: maximumInstanceCount defaults to {param.get('default')}")
    parsed = parse(function_app_text)
    site = next(r for r in parsed["resources"].values() if r["type"] == "Microsoft.Web/sites")
    scale = site["config"]["properties"]["functionAppConfig"]["scaleAndConcurrency"]
    ready = {entry.get("name"): entry.get("instanceCount") for entry in scale.get("alwaysReady") or []}
    if "http" not in ready:
        problems.append("no alwaysReady entry for the HTTP group ('http'): webhooks wait for a cold start")
    else:
        count = ready["http"]
        if isinstance(count, str):  # a parameter: its default
            count = parsed["parameters"].get(count, {}).get("default")
        if count != 1:
            problems.append(f"alwaysReady http instanceCount is {count}, expected 1")
    main_default = parse(main_text)["parameters"].get("httpAlwaysReadyInstances", {}).get("default")
    if main_default != 1:
        problems.append(f"main.bicep httpAlwaysReadyInstances defaults to {main_default}, expected 1")
    return problems


def test_scale_limits_are_flex_s_and_one_http_instance_is_always_ready() -> None:
    assert scale_problems(MAIN.read_text(), FUNCTION_APP.read_text()) == []


def test_a_maximum_flex_refuses_or_a_cold_http_group_is_caught() -> None:
    main, app = MAIN.read_text(), FUNCTION_APP.read_text()
    below = app.replace("@minValue(40)\n@maxValue(1000)\nparam maximumInstanceCount", "@minValue(1)\n@maxValue(1000)\nparam maximumInstanceCount")
    assert below != app and any("below Flex" in p for p in scale_problems(main, below))
    unbounded = main.replace("@minValue(40)\n@maxValue(1000)\nparam maximumInstanceCount", "param maximumInstanceCount")
    assert unbounded != main and any("main.bicep" in p for p in scale_problems(unbounded, app))
    cold = app.replace("name: 'http'", "name: 'function:sync_step'")
    assert cold != app and any("no alwaysReady entry" in p for p in scale_problems(main, cold))


def key_vault_name_problems(main_text: str, parameters: dict[str, Any], azure_yaml: dict[str, Any]) -> list[str]:
    """After `azd down` the vault stays soft-deleted under its name for 90 days (purge
    protection): the name must change with a generation that azd's postdown hook renews."""
    parsed = parse(main_text)
    problems = []
    generation = parsed["parameters"].get("keyVaultGeneration")
    if generation is None or generation.get("default") != "":
        problems.append("main.bicep: no keyVaultGeneration parameter defaulting to ''")
    name = parsed["variables"].get("keyVaultName", {}).get("value")
    rendered = json.dumps(name)
    if name is None or "keyVaultGeneration" not in rendered or "unique_string" not in rendered and "uniqueString" not in rendered:
        problems.append("main.bicep: the vault name does not depend on keyVaultGeneration through uniqueString")
    elif isinstance(name, dict) and "operator" in name:
        operands = name["operator"]["operands"]
        # No generation: the first vault's name, unchanged for environments deployed before.
        if operands.get("true_value") != "kv-${resourceToken}":
            problems.append("main.bicep: without a generation the vault name is not kv-<resourceToken>")
        salted = str(operands.get("false_value"))
        if "keyVaultGeneration" not in salted or len("kv-") + 13 > 24:  # uniqueString is 13 characters
            problems.append("main.bicep: the salted vault name does not use keyVaultGeneration")
    module = parsed["modules"]["keyVault"]["config"]["params"]
    if module.get("name") != "keyVaultName":
        problems.append(f"main.bicep: the keyvault module is named {module.get('name')!r}, not keyVaultName")
    if parameters.get("keyVaultGeneration", {}).get("value") != "${AZURE_KEY_VAULT_GENERATION}":
        problems.append("main.parameters.json: keyVaultGeneration does not come from AZURE_KEY_VAULT_GENERATION")
    postdown = (azure_yaml.get("hooks") or {}).get("postdown") or {}
    for shell in ("posix", "windows"):
        run = str((postdown.get(shell) or {}).get("run", ""))
        if not re.search(r"azd env set AZURE_KEY_VAULT_GENERATION \S", run):
            problems.append(f"azure.yaml: the {shell} postdown hook does not set a new AZURE_KEY_VAULT_GENERATION")
    return problems


def test_a_second_azd_up_after_azd_down_gets_a_new_key_vault_name() -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    azure_yaml = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert key_vault_name_problems(MAIN.read_text(), parameters, azure_yaml) == []
    # The vault keeps purge protection: the tokens key cannot be lost by accident.
    vault = parse(KEY_VAULT.read_text())
    assert vault["parameters"]["enablePurgeProtection"]["default"] is True


def test_a_fixed_key_vault_name_or_a_missing_hook_is_caught() -> None:
    main = MAIN.read_text()
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    azure_yaml = yaml.safe_load((ROOT / "azure.yaml").read_text())
    fixed = main.replace("    name: keyVaultName\n", "    name: 'kv-${resourceToken}'\n")
    assert fixed != main and key_vault_name_problems(fixed, parameters, azure_yaml)
    assert key_vault_name_problems(main, {k: v for k, v in parameters.items() if k != "keyVaultGeneration"}, azure_yaml)
    assert key_vault_name_problems(main, parameters, {k: v for k, v in azure_yaml.items() if k != "hooks"})


def deployer_problems(main_text: str, rbac_text: str, parameters: dict[str, Any]) -> list[str]:
    """A CI deploy signs in as a service principal: the deployer's role assignment must say so."""
    problems = []
    for where, text, name in (("main.bicep", main_text, "principalType"), ("rbac.bicep", rbac_text, "deployerPrincipalType")):
        param = parse(text)["parameters"].get(name, {})
        if param.get("default") != "User" or _decorator(param, "allowed") != ["User", "ServicePrincipal"]:
            problems.append(f"{where}: {name} must default to 'User' and allow exactly 'User' and 'ServicePrincipal'")
    passed = parse(main_text)["modules"]["rbac"]["config"]["params"].get("deployerPrincipalType")
    if passed != "principalType":
        problems.append(f"main.bicep: rbac gets deployerPrincipalType {passed!r}, not principalType")
    assignment = next(
        (body(r) for r in parse(rbac_text)["resources"].values()
         if r["type"] == "Microsoft.Authorization/roleAssignments" and body(r)["properties"]["principalId"] == "deployerPrincipalId"),
        None,
    )
    if assignment is None or assignment["properties"].get("principalType") != "deployerPrincipalType":
        problems.append("rbac.bicep: the deployer's role assignment does not use deployerPrincipalType")
    if parameters.get("principalType", {}).get("value") != "${AZURE_PRINCIPAL_TYPE=User}":
        problems.append("main.parameters.json: principalType does not come from AZURE_PRINCIPAL_TYPE (default User)")
    return problems


def test_the_deployer_may_be_a_ci_service_principal() -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert deployer_problems(MAIN.read_text(), RBAC.read_text(), parameters) == []


def test_a_hard_coded_deployer_principal_type_is_caught() -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    main, rbac = MAIN.read_text(), RBAC.read_text()
    hard = rbac.replace("    principalType: deployerPrincipalType\n", "    principalType: 'User'\n")
    assert hard != rbac and deployer_problems(main, hard, parameters)
    assert deployer_problems(main, rbac, {**parameters, "principalType": {"value": "User"}})


# Zoho's data centres (Multi DC): accounts server and API domain of each.
# Sources: https://zoho.com/accounts/protocol/oauth/multi-dc.html (US, EU, IN, AU, JP, CA, SA, UK),
# https://www.zoho.com/crm/developer/docs/api/v8/multi-dc.html (adds CN), ../shared/contracts/zoho-notes.md.
ZOHO_DATA_CENTRES = {
    "us": ("https://accounts.zoho.com", "https://www.zohoapis.com"),
    "eu": ("https://accounts.zoho.eu", "https://www.zohoapis.eu"),
    "in": ("https://accounts.zoho.in", "https://www.zohoapis.in"),
    "au": ("https://accounts.zoho.com.au", "https://www.zohoapis.com.au"),
    "jp": ("https://accounts.zoho.jp", "https://www.zohoapis.jp"),
    "ca": ("https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
    "sa": ("https://accounts.zoho.sa", "https://www.zohoapis.sa"),
    "uk": ("https://accounts.zoho.uk", "https://www.zohoapis.uk"),
    "cn": ("https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"),
}


def test_every_zoho_data_centre_is_allowed_in_bicep_as_in_the_settings() -> None:
    params = parse(MAIN.read_text())["parameters"]
    accounts = set(params["crmAccountsServers"]["default"].split(","))
    apis = set(params["crmApiDomains"]["default"].split(","))
    assert accounts == {a for a, _ in ZOHO_DATA_CENTRES.values()}
    assert apis == {d for _, d in ZOHO_DATA_CENTRES.values()}
    # the same lists as shared/config.py's defaults (a deployment without the parameter)
    defaults = Settings.model_fields
    assert accounts == set(defaults["crm_accounts_servers"].default.split(","))
    assert apis == set(defaults["crm_api_domains"].default.split(","))
