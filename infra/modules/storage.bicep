// The data account: the `clients`, `tenants` and `expiring` tables (and, with the sandbox, its
// tables) of shared/tables.py, and nothing else. Functions host storage and the deployment package live in
// their own account (hoststorage.bicep), so the host's account-wide rights never reach these
// tables and the app identity holds no blob role here. Shared-key access is disabled: every
// caller authenticates with Microsoft Entra ID (identity-based connections).

@description('Name of the storage account (3-24 lower-case letters and digits).')
param name string

@description('Azure region.')
param location string

@description('Tags applied to the account.')
param tags object

@description('Replication. Geo-redundant by default: the tables hold every client and tenant mapping.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_GRS'

@description('Log Analytics workspace that receives the table access logs.')
param workspaceId string

@description('Create the sandbox provider\'s table (EHRB_SANDBOX_ENABLED).')
param sandboxEnabled bool = false

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  //checkov:skip=CKV_AZURE_35:the Flex Consumption app has no VNet integration here and reaches the tables over public endpoints; every request still needs an Entra token (shared keys off)
  //checkov:skip=CKV_AZURE_59:the Flex Consumption app has no VNet integration here and reaches the tables over public endpoints; every request still needs an Entra token (shared keys off)
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    isLocalUserEnabled: false
    isSftpEnabled: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

// Names from shared/tables.py (CLIENTS_TABLE, TENANTS_TABLE, SANDBOX_TABLE).
resource clientsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: 'clients'
}

resource tenantsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: 'tenants'
}

// EXPIRING_TABLE: rows every instance shares that expire (the failure throttle's counts, the
// instances alive that share the rate limits); bounded and swept by the app (shared/expiring.py).
resource expiringTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: 'expiring'
}

// SANDBOX_TABLE: synthetic FHIR resources of the built-in sandbox provider, only when it is on.
resource sandboxTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = if (sandboxEnabled) {
  parent: tableService
  name: 'sandbox'
}

// SANDBOX_LOCATOR_TABLE and SANDBOX_CHART_TABLES: the sandbox's id locator and the 32 tables its
// patient charts are spread over (shared/sandbox/store.py says why), only when it is on.
var sandboxChartTableNames = [for shard in range(0, 32): 'sandboxchart${padLeft(shard, 2, '0')}']
var sandboxDataTableNames = concat(['sandboxlocator'], sandboxChartTableNames)

resource sandboxDataTables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for name in sandboxDataTableNames: if (sandboxEnabled) {
  parent: tableService
  name: name
}]

// Who read or changed a client record or tenant mapping.
resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-log-analytics'
  scope: tableService
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

output id string = account.id
output name string = account.name
output tableEndpoint string = account.properties.primaryEndpoints.table
output clientsTableName string = clientsTable.name
output tenantsTableName string = tenantsTable.name
output expiringTableName string = expiringTable.name
output sandboxTableName string = sandboxEnabled ? sandboxTable.name : ''
output sandboxDataTableNames array = sandboxEnabled ? sandboxDataTableNames : []
