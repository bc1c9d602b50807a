// Functions host storage (AzureWebJobsStorage__*) and the Flex Consumption deployment container,
// in an account of their own. The host needs account-wide rights here: Storage Blob Data Owner
// for its blobs (keys, leases, the package) and Storage Table Data Contributor for its
// diagnostic events table, which it creates per month (AZFD0003 when it cannot;
// Azure/azure-functions-host#10995). Granting those on the data account would reach the client
// and tenant tables too; here they reach nothing of EHR Bridge's own. Shared keys are off.

@description('Name of the storage account (3-24 lower-case letters and digits).')
param name string

@description('Azure region.')
param location string

@description('Tags applied to the account.')
param tags object

@description('Replication. Host state can be rebuilt and the package redeployed: locally or zone redundant is enough.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
])
param replication string = 'Standard_LRS'

@description('Blob container Flex Consumption deploys the app package to.')
param deploymentContainerName string

@description('Log Analytics workspace that receives the blob access logs (who wrote the package).')
param workspaceId string

resource hostAccount 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  //checkov:skip=CKV_AZURE_35:the Flex Consumption host has no VNet integration here and reaches its storage over public endpoints; every request still needs an Entra token (shared keys off)
  //checkov:skip=CKV_AZURE_59:the Flex Consumption host has no VNet integration here and reaches its storage over public endpoints; every request still needs an Entra token (shared keys off)
  //checkov:skip=CKV_AZURE_206:host state is rebuilt by the host and the package by a deployment; replication is the replication parameter (ZRS with a zone-redundant plan)
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: replication
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

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: hostAccount
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Who wrote the app package: the platform reaches the container with the app's own identity
// (functionAppConfig.deployment.storage.authentication), so that identity can write it too, and
// every write is logged.
resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-log-analytics'
  scope: blobService
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

output id string = hostAccount.id
output name string = hostAccount.name
output deploymentContainerUrl string = '${hostAccount.properties.primaryEndpoints.blob}${deploymentContainer.name}'
