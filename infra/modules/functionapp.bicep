// The Function App on Flex Consumption (Linux, Python 3.12) and its plan. Every app setting
// the product reads (shared/config.py) is set here; secrets are Key Vault references
// resolved by the user-assigned identity. FUNCTIONS_WORKER_RUNTIME and
// FUNCTIONS_EXTENSION_VERSION are deliberately absent: Flex takes the runtime from
// functionAppConfig and refuses those settings.

@description('Name of the Function App (also its default host name).')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Azure region (one that offers Flex Consumption).')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('Resource id of the user-assigned identity.')
param identityId string

@description('Client id of the user-assigned identity (for AzureWebJobsStorage__clientId and Application Insights auth).')
param identityClientId string

@description('Name of the storage account.')
param storageAccountName string

@description('Blob endpoint of the storage account (ends with /).')
param blobEndpoint string

@description('Queue endpoint of the storage account.')
param queueEndpoint string

@description('Table endpoint of the storage account.')
param tableEndpoint string

@description('Blob container Flex Consumption deploys the package from.')
param deploymentContainerName string

@description('Application Insights connection string.')
param applicationInsightsConnectionString string

@description('Versionless Key Vault secret URIs.')
param tokenEncryptionKeyUri string
param sessionSecretUri string
param entraClientSecretUri string
param crmClientSecretUri string

@description('Where people reach the app; empty: https://<default host name>.')
param publicBaseUrl string = ''

@description('Non-secret product settings (shared/config.py): TABLE_PREFIX ... CRM_DEFAULT_PROFILE.')
param productSettings object

@description('Most instances Flex may scale out to (queue workers included); Flex\'s lowest maximum is 40.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Instances of the HTTP functions kept warm: Graph wants its validation handshake answered within 10 s and notifications within about 3 s, faster than a cold start from zero.')
@minValue(0)
@maxValue(1000)
param httpAlwaysReadyInstances int = 1

@description('Memory per instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true // Linux
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  // azd finds the service to deploy by this tag (azure.yaml: services.api).
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        // Flex scales the HTTP functions as one group ('http'); webhooks land there.
        alwaysReady: [
          {
            name: 'http'
            instanceCount: httpAlwaysReadyInstances
          }
        ]
      }
      runtime: {
        name: 'python'
        version: '3.12'
      }
    }
  }

  resource appSettings 'config' = {
    name: 'appsettings'
    properties: union(productSettings, {
      // Host and product storage, identity-based (shared/storage/account.py reads the URIs).
      AzureWebJobsStorage__accountName: storageAccountName
      AzureWebJobsStorage__blobServiceUri: blobEndpoint
      AzureWebJobsStorage__queueServiceUri: queueEndpoint
      AzureWebJobsStorage__tableServiceUri: tableEndpoint
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identityClientId

      // Telemetry: Entra ID auth as the identity (local auth is off on the component).
      APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'

      PUBLIC_BASE_URL: empty(publicBaseUrl) ? 'https://${functionApp.properties.defaultHostName}' : publicBaseUrl

      // Threads of the Python worker (our functions are plain `def`s: each invocation holds one
      // thread). host.json lets one queue function run batchSize 32 + newBatchThreshold 68 = 100
      // messages at once per instance, so that 100 members' initial syncs progress together
      // (issue 21). Without this setting the worker takes min(32, CPUs + 4), a handful on a Flex
      // instance, and the other fetched messages wait inside it, invisible to other instances.
      // 128 = 100 for one queue function + 28 more: where one instance runs every function (the
      // local host; any plan without Flex's per-function scaling), a full `sync-bulk` still
      // leaves threads for `sync-jobs` steps, mail and the webhooks. local/host_config.py
      // DEPLOYED_WORKER_THREADS is the same number (tests/unit/test_infra.py).
      PYTHON_THREADPOOL_THREAD_COUNT: '128'

      // Secrets: Key Vault references only, never values.
      TOKEN_ENCRYPTION_KEY: '@Microsoft.KeyVault(SecretUri=${tokenEncryptionKeyUri})'
      SESSION_SECRET: '@Microsoft.KeyVault(SecretUri=${sessionSecretUri})'
      ENTRA_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${entraClientSecretUri})'
      CRM_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${crmClientSecretUri})'
    })
  }
}

// No FTP or basic-auth publishing: azd deploys to Flex with Entra ID.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
output url string = 'https://${functionApp.properties.defaultHostName}'
