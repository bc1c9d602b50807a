// EHR Bridge: one resource group holding the Function App (Flex Consumption, Python 3.11), its
// data storage account (the `clients` and `tenants` tables), a host storage account
// (AzureWebJobsStorage and the deployment container), Key Vault, Log Analytics + Application
// Insights with the alert rules and the operators' workbook, and the user-assigned managed
// identity the app runs as. Secure by default: HTTPS only, TLS 1.2, no FTP or basic-auth publishing, no CORS,
// no shared keys, no instrumentation keys, RBAC-only Key Vault with purge protection, and role
// assignments limited to what the code does (modules/roles.bicep).
//
//   azd up                                     (azure.yaml; parameters from main.parameters.json)
//   az deployment group create -g RG -f infra/main.bicep -p @<parameters file>   (docs/runbook.md)

targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('Environment name (azd: AZURE_ENV_NAME); part of every resource name and tag.')
param environmentName string

@minLength(1)
@description('Azure region of every resource; must offer the Flex Consumption plan.')
param location string = resourceGroup().location

@description('Function App name; empty: derived. Its host name is <name>-<hash>.<region>-01.azurewebsites.net (a unique default host name), read from the site after creation.')
param functionAppName string = ''

@description('Public host name the Patients app uses if you put a custom domain in front; empty: the app\'s default host name. Sets EHRB_PUBLIC_BASE_URL, EHRB_TOKEN_ISSUER and EHRB_TOKEN_AUDIENCE.')
param publicHostName string = ''

@description('Object id of the operators\' Entra group (or user) given Key Vault Secrets Officer and table access for the ops CLI; empty: none (grant access by hand).')
param operatorPrincipalId string = ''

@description('Type of operatorPrincipalId (azd: EHRB_OPERATOR_PRINCIPAL_TYPE); empty: Azure looks it up, so a group and a user both work.')
@allowed([
  ''
  'Group'
  'User'
  'ServicePrincipal'
])
param operatorPrincipalType string = ''

@description('Key Vault create mode (azd: EHRB_KEYVAULT_CREATE_MODE): empty or default creates the vault; recover brings back the soft-deleted vault a torn-down environment left (docs/runbook.md 1.5).')
@allowed([
  ''
  'default'
  'recover'
])
param keyVaultCreateMode string = ''

@description('Key Vault public network access. Disabled needs private endpoints and VNet integration, which this template does not create.')
@allowed([
  'Enabled'
  'Disabled'
])
param keyVaultPublicNetworkAccess string = 'Enabled'

@description('Storage replication; geo-redundant by default (the tables hold every client and tenant mapping).')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param storageSku string = 'Standard_GRS'

@description('Days the Log Analytics workspace keeps the audit trail; Application Insights is workspace-based and keeps what the workspace keeps.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 90

// Flex Consumption's lowest maximum instance count is 40, its highest 1000
// (learn.microsoft.com/azure/azure-functions/flex-consumption-plan, Considerations).
@description('Most instances the app scales out to (40-1000 on Flex Consumption). They share the rate limits.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Concurrent HTTP requests one instance is sent (functionAppConfig.scaleAndConcurrency.triggers.http.perInstanceConcurrency) and threads the Python worker runs them on. docs/runbook.md 1.6 explains the default.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 16

@description('Instances kept warm for HTTP (billed while idle); 0: scale to zero.')
@minValue(0)
@maxValue(20)
param alwaysReadyInstances int = 0

@description('Zone-redundant Flex Consumption plan (only where the region supports it; use a ZRS or GZRS storageSku).')
param zoneRedundant bool = false

@description('EHRB_TOKEN_ALGORITHM: the one algorithm access tokens are signed and verified with.')
@allowed([
  'RS256'
  'ES256'
])
param tokenAlgorithm string = 'RS256'

@description('EHRB_TOKEN_LIFETIME_SECONDS: access-token lifetime.')
@minValue(60)
@maxValue(3600)
param tokenLifetimeSeconds int = 900

@description('EHRB_CACHE_TTL_SECONDS: cache TTL, hence the revocation delay of changes made elsewhere.')
@minValue(1)
@maxValue(3600)
param cacheTtlSeconds int = 60

@description('EHRB_TENANT_RATE_LIMIT_PER_SECOND: proxied requests per second per tenant, for the whole app (each instance allows its share).')
@minValue(1)
param tenantRateLimitPerSecond int = 50

@description('EHRB_CLIENT_RATE_LIMIT_PER_SECOND: proxied requests per second per client, for the whole app (each instance allows its share).')
@minValue(1)
param clientRateLimitPerSecond int = 50

@description('EHRB_MANAGED_IDENTITY_SCOPES: extra token scopes (space-separated) managed_identity tenants may name; Key Vault, Storage, management and Graph are refused anyway.')
param managedIdentityScopes string = ''

@description('EHRB_SANDBOX_ENABLED: the built-in sandbox provider. Off unless turned on here.')
param sandboxEnabled bool = false

@description('Client id of the Microsoft Entra app registration (app roles EHRBridge.Operator and EHRBridge.Reader) that signs people in to console/ and manage/ through App Service Authentication; empty: no Entra sign-in, the admin key only (docs/runbook.md).')
param consoleEntraClientId string = ''

@description('Tenant of that app registration; empty: the deployment\'s own tenant.')
param consoleEntraTenantId string = ''
@description('EHRB_ASSERTION_ALGORITHM: algorithm of the client assertions signed for private_key_jwt providers (SMART Backend Services: RS384 or ES384).')
@allowed([
  'RS384'
  'ES384'
])
param assertionAlgorithm string = 'RS384'

@description('EHRB_ENTRA_AUDIENCE: EHR Bridge\'s application (client) ID in Entra ID, the aud of the v2.0 app-only tokens tenants may opt in to. Empty: Entra ID tokens are not accepted.')
param entraAudience string = ''

@description('EHRB_ENTRA_AUTHORITY: the Entra ID authority whose tenant issuers and keys are trusted (a sovereign cloud has its own).')
param entraAuthority string = 'https://login.microsoftonline.com'
@description('Resource id of the action group the alert rules notify (e-mail, SMS, a webhook); empty: alerts show in the portal only.')
param alertActionGroupId string = ''

@description('Alert when 5xx answers exceed this percentage of requests over 5 minutes.')
@minValue(1)
@maxValue(100)
param alertServerErrorPercent int = 5

@description('Alert when one tenant\'s provider calls fail above this percentage over 15 minutes.')
@minValue(1)
@maxValue(100)
param alertProviderErrorPercent int = 10

@description('Alert when one tenant\'s provider calls have a 95th percentile above this (ms) over 15 minutes.')
@minValue(100)
param alertProviderLatencyMs int = 5000

@description('Alert when one client\'s token requests are refused more often than this in 15 minutes.')
@minValue(1)
param alertTokenFailuresPerClient int = 50

@description('Alert when the signing key\'s retirement date is fewer than this many days away.')
@minValue(1)
param alertSigningKeyDays int = 14

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var appName = empty(functionAppName) ? 'func-ehrb-${resourceToken}' : functionAppName
var tags = {
  'azd-env-name': environmentName
  application: 'ehr-bridge'
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: 'id-ehrb-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: 'log-ehrb-${resourceToken}'
    applicationInsightsName: 'appi-ehrb-${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logRetentionInDays
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: 'stehrb${resourceToken}'
    location: location
    tags: tags
    skuName: storageSku
    workspaceId: monitoring.outputs.workspaceId
    sandboxEnabled: sandboxEnabled
  }
}

module hostStorage 'modules/hoststorage.bicep' = {
  name: 'hoststorage'
  params: {
    name: 'stfnehrb${resourceToken}'
    location: location
    tags: tags
    replication: zoneRedundant ? 'Standard_ZRS' : 'Standard_LRS'
    deploymentContainerName: 'app-package'
    workspaceId: monitoring.outputs.workspaceId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: 'kv-ehrb-${resourceToken}'
    location: location
    tags: tags
    publicNetworkAccess: keyVaultPublicNetworkAccess
    softDeleteRetentionInDays: 90
    workspaceId: monitoring.outputs.workspaceId
    createMode: empty(keyVaultCreateMode) ? 'default' : keyVaultCreateMode
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    workspaceId: monitoring.outputs.workspaceId
    location: location
    tags: tags
    actionGroupId: alertActionGroupId
    serverErrorPercent: alertServerErrorPercent
    providerErrorPercent: alertProviderErrorPercent
    providerLatencyMs: alertProviderLatencyMs
    tokenFailuresPerClient: alertTokenFailuresPerClient
    signingKeyDays: alertSigningKeyDays
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    workspaceId: monitoring.outputs.workspaceId
    location: location
    tags: tags
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    appPrincipalId: identity.outputs.principalId
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
    keyVaultName: keyVault.outputs.name
    storageAccountName: storage.outputs.name
    hostStorageAccountName: hostStorage.outputs.name
    clientsTableName: storage.outputs.clientsTableName
    tenantsTableName: storage.outputs.tenantsTableName
    expiringTableName: storage.outputs.expiringTableName
    sandboxTableName: storage.outputs.sandboxTableName
    sandboxDataTableNames: storage.outputs.sandboxDataTableNames
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    workspaceName: monitoring.outputs.workspaceName
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    name: appName
    planName: 'plan-ehrb-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    hostStorageAccountName: hostStorage.outputs.name
    deploymentContainerUrl: hostStorage.outputs.deploymentContainerUrl
    tablesEndpoint: storage.outputs.tableEndpoint
    keyVaultUri: keyVault.outputs.uri
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    auditWorkspaceId: monitoring.outputs.workspaceCustomerId
    publicHostName: publicHostName
    maximumInstanceCount: maximumInstanceCount
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    alwaysReadyInstances: alwaysReadyInstances
    zoneRedundant: zoneRedundant
    tokenAlgorithm: tokenAlgorithm
    tokenLifetimeSeconds: tokenLifetimeSeconds
    cacheTtlSeconds: cacheTtlSeconds
    tenantRateLimitPerSecond: tenantRateLimitPerSecond
    clientRateLimitPerSecond: clientRateLimitPerSecond
    managedIdentityScopes: managedIdentityScopes
    sandboxEnabled: sandboxEnabled
    consoleEntraClientId: consoleEntraClientId
    consoleEntraTenantId: empty(consoleEntraTenantId) ? tenant().tenantId : consoleEntraTenantId
    assertionAlgorithm: assertionAlgorithm
    entraAudience: entraAudience
    entraAuthority: entraAuthority
  }
  // The host reads its storage and Application Insights with the identity: grant first.
  dependsOn: [
    roles
  ]
}

// The public face: what a customer pastes into the Patients app, and where tokens come from.
output FHIR_DSTU2_URL string = '${functionApp.outputs.publicBaseUrl}/api/fhir/dstu2'
output FHIR_STU3_URL string = '${functionApp.outputs.publicBaseUrl}/api/fhir/stu3'
output FHIR_R4_URL string = '${functionApp.outputs.publicBaseUrl}/api/fhir/r4'
output TOKEN_URL string = '${functionApp.outputs.publicBaseUrl}/api/oauth2/token'
output KEY_VAULT_NAME string = keyVault.outputs.name

// For operators: names, and the settings the ops CLI reads (`azd env get-values`).
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_HOSTNAME string = functionApp.outputs.defaultHostName
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output LOG_ANALYTICS_WORKSPACE_NAME string = monitoring.outputs.workspaceName
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output HOST_STORAGE_ACCOUNT_NAME string = hostStorage.outputs.name
output EHRB_SECRET_STORE string = 'keyvault'
output EHRB_KEYVAULT_URL string = keyVault.outputs.uri
output EHRB_TABLES_ENDPOINT string = storage.outputs.tableEndpoint
output EHRB_TOKEN_ALGORITHM string = tokenAlgorithm
output EHRB_TOKEN_LIFETIME_SECONDS string = string(tokenLifetimeSeconds)
output EHRB_CACHE_TTL_SECONDS string = string(cacheTtlSeconds)
