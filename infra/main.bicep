// The product in Azure: a Function App on Flex Consumption (Python 3.12), its Storage
// account, Key Vault, Application Insights with Log Analytics, and a user-assigned managed
// identity with least-privilege roles. Deployed by `azd up` (azure.yaml at the repository
// root); parameters come from main.parameters.json (azd environment values).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; names the resource group and seeds every resource name.')
param environmentName string

@minLength(1)
@description('Azure region for every resource; must offer Flex Consumption.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the person running azd (AZURE_PRINCIPAL_ID): made Key Vault Secrets Officer. Empty: none.')
param principalId string = ''

@description('Kind of principal principalId is (AZURE_PRINCIPAL_TYPE): a person running azd, or the service principal of a CI pipeline (azd auth login --client-id ...). A mismatch fails the role assignment with UnmatchedPrincipalType.')
@allowed([
  'User'
  'ServicePrincipal'
])
param principalType string = 'User'

@description('AZURE_KEY_VAULT_GENERATION: salts the Key Vault\'s name. Empty: the first vault of the environment (kv-<token>). The postdown hook of azure.yaml sets a new value after `azd down`, because the deleted vault keeps its name for 90 days (soft delete with purge protection). See docs/deploy.md.')
@maxLength(64)
param keyVaultGeneration string = ''

// --- Product settings (names as in shared/config.py) -------------------------------------

@description('Where people reach the app (a custom domain); empty: https://<function app>.azurewebsites.net.')
param publicBaseUrl string = ''

@description('Application (client) id of the multi-tenant Entra ID app registration: ENTRA_CLIENT_ID.')
param entraClientId string = ''

@description('Microsoft Graph base URL: GRAPH_BASE_URL.')
param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'

@description('The CRM OAuth client id: CRM_CLIENT_ID.')
param crmClientId string = ''

@description('The CRM accounts (OAuth) server of the default data centre: CRM_ACCOUNTS_URL.')
param crmAccountsUrl string = 'https://accounts.zoho.com'

@description('The CRM\'s first-party provisioning API: CRM_PROVISIONING_URL.')
param crmProvisioningUrl string = 'https://provisioning.zoho.com/v1'

@description('Accounts servers OAuth redirects may name, comma-separated: CRM_ACCOUNTS_SERVERS.')
param crmAccountsServers string = 'https://accounts.zoho.com,https://accounts.zoho.eu,https://accounts.zoho.in,https://accounts.zoho.com.au,https://accounts.zoho.jp,https://accounts.zohocloud.ca,https://accounts.zoho.sa,https://accounts.zoho.uk,https://accounts.zoho.com.cn'

@description('API domains token answers may name, comma-separated: CRM_API_DOMAINS.')
param crmApiDomains string = 'https://www.zohoapis.com,https://www.zohoapis.eu,https://www.zohoapis.in,https://www.zohoapis.com.au,https://www.zohoapis.jp,https://www.zohoapis.ca,https://www.zohoapis.sa,https://www.zohoapis.uk,https://www.zohoapis.com.cn'

@description('Prefix of every table name: TABLE_PREFIX.')
param tablePrefix string = 'crm365'

@description('Days invitation and approval links stay valid: LINK_LIFETIME_DAYS.')
@minValue(1)
@maxValue(60)
param linkLifetimeDays int = 7

@description('Seconds a Graph or CRM request may take before it is abandoned: OUTBOUND_TIMEOUT_SECONDS.')
@minValue(1)
@maxValue(230)
param outboundTimeoutSeconds int = 30

@description('CRM profile given to people brought in: CRM_DEFAULT_PROFILE.')
param crmDefaultProfile string = 'Standard'

// --- Secrets: written to Key Vault when given (azd env), else set them there yourself ----

@secure()
@description('TOKEN_ENCRYPTION_KEY: Fernet key(s), comma-separated, newest first.')
param tokenEncryptionKey string = ''

@secure()
@description('SESSION_SECRET: at least 32 random characters.')
param sessionSecret string = ''

@secure()
@description('ENTRA_CLIENT_SECRET: the app registration\'s client secret.')
param entraClientSecret string = ''

@secure()
@description('CRM_CLIENT_SECRET: the CRM OAuth client\'s secret.')
param crmClientSecret string = ''

// --- Scale ---------------------------------------------------------------------------------

@description('Most instances the Function App may scale out to. Flex Consumption refuses a maximum below 40 (its lowest) or above 1000.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Instances of the HTTP functions Flex keeps warm (billed while idle). 1: Graph\'s webhook validation (10 s) and notifications (about 3 s) never wait for a cold start; 0 in a test environment saves the cost.')
@minValue(0)
@maxValue(1000)
param httpAlwaysReadyInstances int = 1

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
// The vault's name outlives the vault: a deleted vault is kept (soft delete, purge protection)
// for 90 days under its name, so a new generation after `azd down` takes a new name.
var keyVaultName = empty(keyVaultGeneration) ? 'kv-${resourceToken}' : 'kv-${toLower(uniqueString(subscription().id, environmentName, location, keyVaultGeneration))}'
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = 'func-${resourceToken}'
// Flex deploys from a blob container; one per app.
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}'
// The product's queue triggers (shared/mail/outbox.py OUTBOX_QUEUE, shared/sync/jobs.py SYNC_QUEUES,
// shared/sync/crm_routing.py CRM_CHANGES_QUEUE, shared/sync/held_notifications.py GRAPH_NOTIFICATIONS_QUEUE).
var queueNames = [
  'mail-outbox'
  'sync-jobs'
  'sync-bulk'
  'crm-changes'
  'graph-notifications'
]

resource resourceGroup 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: resourceGroup
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: resourceGroup
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: resourceGroup
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    queueNames: queueNames
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: resourceGroup
  params: {
    name: keyVaultName
    location: location
    tags: tags
    tokenEncryptionKey: tokenEncryptionKey
    sessionSecret: sessionSecret
    entraClientSecret: entraClientSecret
    crmClientSecret: crmClientSecret
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  scope: resourceGroup
  params: {
    identityPrincipalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: resourceGroup
  // The app starts resolving Key Vault references and reading storage at once: roles first.
  dependsOn: [
    rbac
  ]
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    tokenEncryptionKeyUri: keyVault.outputs.tokenEncryptionKeyUri
    sessionSecretUri: keyVault.outputs.sessionSecretUri
    entraClientSecretUri: keyVault.outputs.entraClientSecretUri
    crmClientSecretUri: keyVault.outputs.crmClientSecretUri
    publicBaseUrl: publicBaseUrl
    maximumInstanceCount: maximumInstanceCount
    httpAlwaysReadyInstances: httpAlwaysReadyInstances
    productSettings: {
      TABLE_PREFIX: tablePrefix
      ENTRA_AUTHORITY_HOST: environment().authentication.loginEndpoint
      ENTRA_CLIENT_ID: entraClientId
      GRAPH_BASE_URL: graphBaseUrl
      CRM_ACCOUNTS_URL: crmAccountsUrl
      CRM_PROVISIONING_URL: crmProvisioningUrl
      CRM_ACCOUNTS_SERVERS: crmAccountsServers
      CRM_API_DOMAINS: crmApiDomains
      CRM_CLIENT_ID: crmClientId
      LINK_LIFETIME_DAYS: string(linkLifetimeDays)
      OUTBOUND_TIMEOUT_SECONDS: string(outboundTimeoutSeconds)
      CRM_DEFAULT_PROFILE: crmDefaultProfile
    }
  }
}

// azd stores these in the environment (.azure/<env>/.env); docs/deploy.md uses them.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = resourceGroup.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output SERVICE_API_NAME string = functionApp.outputs.name
output SERVICE_API_URL string = functionApp.outputs.url
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_IDENTITY_CLIENT_ID string = identity.outputs.clientId
