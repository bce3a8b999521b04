// Key Vault in RBAC mode for the product's secrets. App settings reference them with
// @Microsoft.KeyVault(SecretUri=...) (no version: the app picks up a new version itself),
// resolved by the Function App's user-assigned identity (Key Vault Secrets User).
//
// A secret is written here only when its value is given (azd env values); leave a value
// empty to manage that secret yourself with `az keyvault secret set` (docs/deploy.md).

@description('Name of the Key Vault (3-24 characters).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('Keep deleted secrets and the vault recoverable for 90 days, even from an owner: the tokens key cannot be lost by accident.')
param enablePurgeProtection bool = true

@secure()
@description('Fernet key(s), comma-separated, newest first: TOKEN_ENCRYPTION_KEY.')
param tokenEncryptionKey string = ''

@secure()
@description('Signs session cookies and CSRF tokens: SESSION_SECRET.')
param sessionSecret string = ''

@secure()
@description('The Entra ID app registration\'s client secret: ENTRA_CLIENT_SECRET.')
param entraClientSecret string = ''

@secure()
@description('The CRM OAuth client\'s secret: CRM_CLIENT_SECRET.')
param crmClientSecret string = ''

// Secret names in the vault, one per secret app setting.
var secretNames = {
  tokenEncryptionKey: 'token-encryption-key'
  sessionSecret: 'session-secret'
  entraClientSecret: 'entra-client-secret'
  crmClientSecret: 'crm-client-secret'
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: enablePurgeProtection ? true : null
    publicNetworkAccess: 'Enabled'
  }
}

resource tokenEncryptionKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(tokenEncryptionKey)) {
  parent: vault
  name: secretNames.tokenEncryptionKey
  properties: {
    value: tokenEncryptionKey
  }
}

resource sessionSecretSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(sessionSecret)) {
  parent: vault
  name: secretNames.sessionSecret
  properties: {
    value: sessionSecret
  }
}

resource entraClientSecretSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(entraClientSecret)) {
  parent: vault
  name: secretNames.entraClientSecret
  properties: {
    value: entraClientSecret
  }
}

resource crmClientSecretSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(crmClientSecret)) {
  parent: vault
  name: secretNames.crmClientSecret
  properties: {
    value: crmClientSecret
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
// Versionless secret URIs, for Key Vault references.
output tokenEncryptionKeyUri string = '${vault.properties.vaultUri}secrets/${secretNames.tokenEncryptionKey}'
output sessionSecretUri string = '${vault.properties.vaultUri}secrets/${secretNames.sessionSecret}'
output entraClientSecretUri string = '${vault.properties.vaultUri}secrets/${secretNames.entraClientSecret}'
output crmClientSecretUri string = '${vault.properties.vaultUri}secrets/${secretNames.crmClientSecret}'
