// The Function App on the Flex Consumption plan (Linux, Python 3.11) and its app settings.
//
// App settings (siteConfig.appSettings) are exactly the names the code reads (shared/settings.py
// SETTINGS, less the development-only ones) plus the platform's identity-based host storage and
// Application Insights settings; tests/infra/test_bicep.py keeps the two in step. Runtime,
// scale and the deployment container live in functionAppConfig: on Flex Consumption
// FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION and WEBSITE_RUN_FROM_PACKAGE are not
// app settings.

@description('Name of the Function App (also its default host name).')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Azure region.')
param location string

@description('Tags applied to the plan and the app (the app also carries azd-service-name).')
param tags object

@description('Resource id of the user-assigned managed identity the app runs as.')
param identityId string

@description('Client id of that identity (AZURE_CLIENT_ID, AzureWebJobsStorage__clientId).')
param identityClientId string

@description('Name of the storage account (host storage, tables, deployment container).')
param storageAccountName string

@description('URL of the blob container Flex Consumption deploys the package to.')
param deploymentContainerUrl string

@description('Table service endpoint (EHRB_TABLES_ENDPOINT).')
param tablesEndpoint string

@description('Key Vault URI (EHRB_KEYVAULT_URL).')
param keyVaultUri string

@description('Application Insights connection string (no key is usable: local auth is off).')
param applicationInsightsConnectionString string

@description('Public host name callers use; empty: the app\'s default host name.')
param publicHostName string

@description('Most instances the app scales out to (rate limits are per instance).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int

@description('Instances kept warm for HTTP; 0 scales to zero (cold starts) and costs nothing idle.')
@minValue(0)
@maxValue(20)
param alwaysReadyInstances int

@description('Spread instances across availability zones (only in regions where Flex Consumption supports it).')
param zoneRedundant bool

@description('EHRB_TOKEN_ALGORITHM: RS256 or ES256.')
@allowed([
  'RS256'
  'ES256'
])
param tokenAlgorithm string

@description('EHRB_TOKEN_LIFETIME_SECONDS.')
@minValue(60)
@maxValue(3600)
param tokenLifetimeSeconds int

@description('EHRB_CACHE_TTL_SECONDS: the revocation delay.')
@minValue(1)
@maxValue(3600)
param cacheTtlSeconds int

@description('EHRB_TENANT_RATE_LIMIT_PER_SECOND (per instance).')
@minValue(1)
param tenantRateLimitPerSecond int

@description('EHRB_CLIENT_RATE_LIMIT_PER_SECOND (per instance).')
@minValue(1)
param clientRateLimitPerSecond int

@description('EHRB_SANDBOX_ENABLED: the built-in sandbox provider (off unless turned on).')
param sandboxEnabled bool

// The default host name, known before the app exists so that the app's own settings can carry
// it (Flex Consumption apps get <name>.<domain> unless a unique default host name is requested,
// which this template does not do). The defaultHostName output shows the platform's answer.
var appServiceDomain = (environment().name == 'AzureUSGovernment') ? 'azurewebsites.us' : ((environment().name == 'AzureChinaCloud') ? 'chinacloudsites.cn' : 'azurewebsites.net')
var publicHost = empty(publicHostName) ? '${name}.${appServiceDomain}' : publicHostName
var publicBaseUrl = 'https://${publicHost}'

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  //checkov:skip=CKV_AZURE_225:zone redundancy is the zoneRedundant parameter: Flex Consumption offers it only in some regions
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  //checkov:skip=CKV_AZURE_17:the Patients app authenticates with OAuth client credentials, not client certificates
  //checkov:skip=CKV_AZURE_222:the FHIR faces and the token endpoint are public by design: the Patients app calls them from Microsoft's cloud
  //checkov:skip=CKV_AZURE_78:Flex Consumption rejects siteConfig.ftpsState (ARM error 51021); FTP publishing is off through the ftp basicPublishingCredentialsPolicies below
  //checkov:skip=CKV_AZURE_212:numberOfWorkers does not apply to Flex Consumption, which scales per request; warm instances are the alwaysReadyInstances parameter
  //checkov:skip=CKV_AZURE_213:App Service health check is not configured on Flex Consumption here; GET /api/health answers external probes
  //checkov:skip=CKV_AZURE_18:siteConfig.http20Enabled is left to the platform default on Flex Consumption, which rejects several classic siteConfig properties
  //checkov:skip=CKV_AZURE_67:siteConfig.http20Enabled is left to the platform default on Flex Consumption, which rejects several classic siteConfig properties
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
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
    clientAffinityEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      appSettings: [
        // Platform: identity-based host storage (no connection string, no key).
        {
          name: 'AzureWebJobsStorage__accountName'
          value: storageAccountName
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identityClientId
        }
        // Platform: Application Insights with Entra ID authentication.
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: applicationInsightsConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identityClientId};Authorization=AAD'
        }
        // EHR Bridge: shared/settings.py SETTINGS, less the local_only ones.
        {
          name: 'AZURE_CLIENT_ID'
          value: identityClientId
        }
        {
          name: 'EHRB_PUBLIC_BASE_URL'
          value: publicBaseUrl
        }
        {
          name: 'EHRB_TRUST_FORWARDED_HEADERS'
          value: 'false'
        }
        {
          name: 'EHRB_TOKEN_ISSUER'
          value: '${publicBaseUrl}/api/oauth2'
        }
        {
          name: 'EHRB_TOKEN_AUDIENCE'
          value: '${publicBaseUrl}/api/fhir'
        }
        {
          name: 'EHRB_TOKEN_LIFETIME_SECONDS'
          value: string(tokenLifetimeSeconds)
        }
        {
          name: 'EHRB_TOKEN_ALGORITHM'
          value: tokenAlgorithm
        }
        {
          name: 'EHRB_CACHE_TTL_SECONDS'
          value: string(cacheTtlSeconds)
        }
        {
          name: 'EHRB_TOKEN_FAILURE_LIMIT'
          value: '10'
        }
        {
          name: 'EHRB_TOKEN_FAILURE_WINDOW_SECONDS'
          value: '60'
        }
        {
          name: 'EHRB_TOKEN_CLIENT_FAILURE_CEILING'
          value: '1000'
        }
        // No proxy of our own in front of the app: the front end's X-Forwarded-For hop is the
        // source address. Raise it only with inbound access restricted to that proxy.
        {
          name: 'EHRB_TRUSTED_PROXY_HOPS'
          value: '0'
        }
        {
          name: 'EHRB_SECRET_STORE'
          value: 'keyvault'
        }
        {
          name: 'EHRB_KEYVAULT_URL'
          value: keyVaultUri
        }
        {
          name: 'EHRB_KEYVAULT_TIMEOUT_SECONDS'
          value: '3'
        }
        {
          name: 'EHRB_STORE_CIRCUIT_FAILURE_THRESHOLD'
          value: '3'
        }
        {
          name: 'EHRB_STORE_CIRCUIT_OPEN_SECONDS'
          value: '10'
        }
        {
          name: 'EHRB_TABLES_ENDPOINT'
          value: tablesEndpoint
        }
        {
          name: 'EHRB_MAX_REQUEST_BODY_BYTES'
          value: '1048576'
        }
        {
          name: 'EHRB_UPSTREAM_CONNECT_TIMEOUT_SECONDS'
          value: '5'
        }
        {
          name: 'EHRB_UPSTREAM_READ_TIMEOUT_SECONDS'
          value: '30'
        }
        {
          name: 'EHRB_CIRCUIT_FAILURE_THRESHOLD'
          value: '5'
        }
        {
          name: 'EHRB_CIRCUIT_OPEN_SECONDS'
          value: '30'
        }
        {
          name: 'EHRB_TENANT_RATE_LIMIT_PER_SECOND'
          value: string(tenantRateLimitPerSecond)
        }
        {
          name: 'EHRB_CLIENT_RATE_LIMIT_PER_SECOND'
          value: string(clientRateLimitPerSecond)
        }
        {
          name: 'EHRB_BATCH_MAX_ENTRIES'
          value: '50'
        }
        {
          name: 'EHRB_BATCH_CONCURRENCY'
          value: '4'
        }
        {
          name: 'EHRB_SORT_COMPENSATION_CAP'
          value: '1000'
        }
        {
          name: 'EHRB_REQUEST_UPSTREAM_CALLS'
          value: '200'
        }
        {
          name: 'EHRB_REQUEST_DEADLINE_SECONDS'
          value: '120'
        }
        // Read by the sandbox provider (a later milestone); off unless sandboxEnabled.
        {
          name: 'EHRB_SANDBOX_ENABLED'
          value: sandboxEnabled ? 'true' : 'false'
        }
      ]
      cors: {
        allowedOrigins: []
        supportCredentials: false
      }
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
        alwaysReady: alwaysReadyInstances > 0 ? [
          {
            name: 'http'
            instanceCount: alwaysReadyInstances
          }
        ] : []
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// No FTP and no basic-auth publishing: azd and `az functionapp deployment` use Entra tokens.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = app.name
output defaultHostName string = app.properties.defaultHostName
output expectedHostName string = publicHost
output publicBaseUrl string = publicBaseUrl
