// The Function App on the Flex Consumption plan (Linux, Python 3.11) and its app settings.
//
// App settings are exactly the names the code reads (shared/settings.py SETTINGS, less the
// development-only ones) plus the platform's identity-based host storage and Application
// Insights settings; tests/infra/test_bicep.py keeps the two in step. They are a
// `sites/config` `appsettings` child written after the site exists, as the azd Flex Consumption
// template does (Azure-Samples/functions-quickstart-python-http-azd,
// infra/core/host/functions-flexconsumption.bicep), because three of them carry the site's own
// defaultHostName, which only the platform knows. Runtime, scale and the deployment container
// live in functionAppConfig: on Flex Consumption FUNCTIONS_WORKER_RUNTIME,
// FUNCTIONS_EXTENSION_VERSION and WEBSITE_RUN_FROM_PACKAGE are not app settings.

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

@description('Name of the Functions host storage account (AzureWebJobsStorage; the deployment container).')
param hostStorageAccountName string

@description('URL of the blob container Flex Consumption deploys the package to.')
param deploymentContainerUrl string

@description('Table service endpoint (EHRB_TABLES_ENDPOINT).')
param tablesEndpoint string

@description('Key Vault URI (EHRB_KEYVAULT_URL).')
param keyVaultUri string

@description('Application Insights connection string (no key is usable: local auth is off).')
param applicationInsightsConnectionString string

@description('Log Analytics workspace id (customerId) the audit export reads (EHRB_AUDIT_WORKSPACE_ID).')
param auditWorkspaceId string

@description('Public host name callers use; empty: the app\'s default host name.')
param publicHostName string

@description('Most instances the app scales out to (they share the rate limits).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

@description('Concurrent HTTP requests the platform sends one instance; also the Python worker\'s thread count.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int

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

@description('EHRB_TENANT_RATE_LIMIT_PER_SECOND (for the whole app).')
@minValue(1)
param tenantRateLimitPerSecond int

@description('EHRB_CLIENT_RATE_LIMIT_PER_SECOND (for the whole app).')
@minValue(1)
param clientRateLimitPerSecond int

@description('EHRB_MANAGED_IDENTITY_SCOPES (space-separated; empty: each provider\'s own origin only).')
param managedIdentityScopes string

@description('EHRB_SANDBOX_ENABLED: the built-in sandbox provider (off unless turned on).')
param sandboxEnabled bool

@description('Client id of the Entra app registration for console/ and manage/ sign-in; empty: none.')
param consoleEntraClientId string

@description('Tenant id of that app registration.')
param consoleEntraTenantId string
@description('EHRB_ASSERTION_ALGORITHM: RS384 or ES384.')
@allowed([
  'RS384'
  'ES384'
])
param assertionAlgorithm string

@description('EHRB_ENTRA_AUDIENCE: EHR Bridge\'s Entra application (client) ID; empty: Entra ID tokens off.')
param entraAudience string

@description('EHRB_ENTRA_AUTHORITY: the Entra ID authority (https origin).')
param entraAuthority string

// The platform's own host name, read from the site: with a unique default host name it is
// <name>-<hash>.<region>-01.azurewebsites.net, which no template can guess.
var publicHost = empty(publicHostName) ? app.properties.defaultHostName : publicHostName
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

resource app 'Microsoft.Web/sites@2024-11-01' = {
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
    // Unique default host name (GA for Functions, Jan 2026; set at creation only): once torn
    // down, no other tenant can claim it while customers still send client secrets to it.
    autoGeneratedDomainNameLabelScope: 'TenantReuse'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
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
        // Left unset, the platform picks a default by instance size and language, reported as 1
        // for Python (learn.microsoft.com/azure/azure-functions/functions-concurrency
        // #http-trigger-concurrency). docs/runbook.md 1.6 explains this default; the first
        // deployment confirms it (docs/runbook.md 13).
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
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

// Every provision replaces the whole set: a value edited in the portal is lost (docs/runbook.md).
resource appSettings 'Microsoft.Web/sites/config@2024-11-01' = {
  //checkov:skip=CKV_AZURE_13:the appsettings config resource is a name/value list, not siteConfig; checkov reads every sites/config as web config, and the site's own siteConfig is checked above
  //checkov:skip=CKV_AZURE_63:the appsettings config resource is a name/value list, not siteConfig; checkov reads every sites/config as web config, and the site's own siteConfig is checked above
  //checkov:skip=CKV_AZURE_65:the appsettings config resource is a name/value list, not siteConfig; checkov reads every sites/config as web config, and the site's own siteConfig is checked above
  //checkov:skip=CKV_AZURE_66:the appsettings config resource is a name/value list, not siteConfig; checkov reads every sites/config as web config, and the site's own siteConfig is checked above
  //checkov:skip=CKV_AZURE_80:the appsettings config resource is a name/value list, not siteConfig; checkov reads every sites/config as web config, and the site's own siteConfig is checked above
  //checkov:skip=CKV_AZURE_88:the appsettings config resource is a name/value list, not siteConfig; checkov reads every sites/config as web config, and the site's own siteConfig is checked above
  //checkov:skip=CKV_AZURE_222:the appsettings config resource is a name/value list, not siteConfig; checkov reads every sites/config as web config, and the site's own siteConfig is checked above
  parent: app
  name: 'appsettings'
  properties: {
    // Platform: identity-based host storage (no connection string, no key).
    AzureWebJobsStorage__accountName: hostStorageAccountName
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    // Platform: Application Insights with Entra ID authentication, for the host and for the
    // app's exporter, which shared/telemetry/setup.py turns on with the connection string.
    // The worker streams the app's OpenTelemetry logs itself, so the host does not send them
    // twice: host.json telemetryMode is OpenTelemetry, see docs/runbook.md 13.
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    PYTHON_ENABLE_OPENTELEMETRY: 'true'
    // EHR Bridge: shared/settings.py SETTINGS, less the local_only ones.
    AZURE_CLIENT_ID: identityClientId
    EHRB_PUBLIC_BASE_URL: publicBaseUrl
    EHRB_TRUST_FORWARDED_HEADERS: 'false'
    EHRB_TOKEN_ISSUER: '${publicBaseUrl}/api/oauth2'
    EHRB_TOKEN_AUDIENCE: '${publicBaseUrl}/api/fhir'
    EHRB_TOKEN_LIFETIME_SECONDS: string(tokenLifetimeSeconds)
    EHRB_TOKEN_ALGORITHM: tokenAlgorithm
    EHRB_ASSERTION_ALGORITHM: assertionAlgorithm
    EHRB_ENTRA_AUDIENCE: entraAudience
    EHRB_ENTRA_AUTHORITY: entraAuthority
    EHRB_CACHE_TTL_SECONDS: string(cacheTtlSeconds)
    EHRB_TOKEN_FAILURE_LIMIT: '10'
    EHRB_TOKEN_FAILURE_WINDOW_SECONDS: '60'
    EHRB_TOKEN_CLIENT_FAILURE_CEILING: '1000'
    // No proxy of our own in front of the app: the front end's X-Forwarded-For hop is the
    // source address. Raise it only with inbound access restricted to that proxy.
    EHRB_TRUSTED_PROXY_HOPS: '0'
    EHRB_SECRET_STORE: 'keyvault'
    EHRB_KEYVAULT_URL: keyVaultUri
    EHRB_KEYVAULT_TIMEOUT_SECONDS: '3'
    EHRB_STORE_CIRCUIT_FAILURE_THRESHOLD: '3'
    EHRB_STORE_CIRCUIT_OPEN_SECONDS: '10'
    EHRB_TABLES_ENDPOINT: tablesEndpoint
    EHRB_MAX_REQUEST_BODY_BYTES: '1048576'
    EHRB_UPSTREAM_CONNECT_TIMEOUT_SECONDS: '5'
    EHRB_UPSTREAM_READ_TIMEOUT_SECONDS: '30'
    EHRB_CIRCUIT_FAILURE_THRESHOLD: '5'
    EHRB_CIRCUIT_OPEN_SECONDS: '30'
    EHRB_TENANT_RATE_LIMIT_PER_SECOND: string(tenantRateLimitPerSecond)
    EHRB_CLIENT_RATE_LIMIT_PER_SECOND: string(clientRateLimitPerSecond)
    EHRB_MANAGED_IDENTITY_SCOPES: managedIdentityScopes
    EHRB_BATCH_MAX_ENTRIES: '50'
    EHRB_BATCH_CONCURRENCY: '4'
    EHRB_SORT_COMPENSATION_CAP: '1000'
    EHRB_REQUEST_UPSTREAM_CALLS: '200'
    EHRB_REQUEST_DEADLINE_SECONDS: '120'
    // The sandbox provider; off unless sandboxEnabled.
    EHRB_SANDBOX_ENABLED: sandboxEnabled ? 'true' : 'false'
    // Sign-in through App Service Authentication (authSettings below); the app also requires
    // the platform's own WEBSITE_AUTH_ENABLED before it trusts the principal header.
    EHRB_ENTRA_AUTH: empty(consoleEntraClientId) ? 'false' : 'true'
    // The audit export reads the workspace with the identity (Log Analytics Reader, roles.bicep).
    EHRB_AUDIT_WORKSPACE_ID: auditWorkspaceId
    EHRB_LOG_ANALYTICS_ENDPOINT: 'https://api.loganalytics.io'
    // The Python worker runs synchronous functions on this many threads: as many as the
    // platform sends one instance, so none waits for a thread (docs/runbook.md 1.6).
    PYTHON_THREADPOOL_THREAD_COUNT: string(httpPerInstanceConcurrency)
  }
}

// App Service Authentication (Microsoft Entra ID) for the console and the management API, only
// when an app registration is given. Anonymous requests pass (AllowAnonymous): the app decides,
// answering console pages with the platform's sign-in and manage/ with 401. The Patients app's
// routes are excluded, so the platform never judges their bearer tokens (ours, not Entra's).
// No client secret: browser sign-in uses the OpenID Connect ID token, which carries the user's
// app roles; operator scripts send an Entra access token for the registration's audience.
resource authSettings 'Microsoft.Web/sites/config@2024-11-01' = if (!empty(consoleEntraClientId)) {
  //checkov:skip=CKV_AZURE_13:the authsettingsV2 config resource is App Service Authentication itself, not siteConfig; checkov reads every sites/config as web config, and the site's own siteConfig is checked above
  //checkov:skip=CKV_AZURE_63:the authsettingsV2 config resource is App Service Authentication itself, not siteConfig; checkov reads every sites/config as web config, and the site's own siteConfig is checked above
  //checkov:skip=CKV_AZURE_65:the authsettingsV2 config resource is App Service Authentication itself, not siteConfig; checkov reads every sites/config as web config, and the site's own siteConfig is checked above
  //checkov:skip=CKV_AZURE_66:the authsettingsV2 config resource is App Service Authentication itself, not siteConfig; checkov reads every sites/config as web config, and the site's own siteConfig is checked above
  //checkov:skip=CKV_AZURE_80:the authsettingsV2 config resource is App Service Authentication itself, not siteConfig; checkov reads every sites/config as web config, and the site's own siteConfig is checked above
  //checkov:skip=CKV_AZURE_88:the authsettingsV2 config resource is App Service Authentication itself, not siteConfig; checkov reads every sites/config as web config, and the site's own siteConfig is checked above
  //checkov:skip=CKV_AZURE_222:the authsettingsV2 config resource is App Service Authentication itself, not siteConfig; checkov reads every sites/config as web config, and the site's own siteConfig is checked above
  parent: app
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: false
      unauthenticatedClientAction: 'AllowAnonymous'
      excludedPaths: [
        '/api/fhir'
        '/api/oauth2'
        '/api/health'
        '/api/sandbox'
      ]
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: consoleEntraClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${consoleEntraTenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${consoleEntraClientId}'
            consoleEntraClientId
          ]
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
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
output publicBaseUrl string = publicBaseUrl
