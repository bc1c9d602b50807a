// Every role assignment of the deployment, and nothing broader than what the code does.
// tests/infra/test_bicep.py checks this file against the code's needs: each role below is
// assigned to exactly the principals named here, and no Owner, Contributor, User Access
// Administrator or other management-plane role appears anywhere in infra/.
//
// The app's user-assigned identity (AZURE_CLIENT_ID):
//   Key Vault Secrets Officer       vault        get/list for the token and proxy paths
//                                                (client-*, token-signing-key, provider-*),
//                                                set/update for the management API, which
//                                                registers clients and rotates or disables
//                                                client-secret versions in the app itself.
//                                                Secrets User is read-only and would break
//                                                POST manage/clients and secret rotation. The
//                                                role also allows delete, backup and restore,
//                                                which the code never calls; no narrower
//                                                built-in role exists and a custom one needs
//                                                roleDefinitions/write, which the deploying
//                                                principal does not have (docs/runbook.md 12).
//   Storage Table Data Contributor  data tables  read and write client records and tenant
//                                   clients,     mappings (get, insert, replace, delete,
//                                   tenants,     query), and the rows every instance shares
//                                   expiring     (failure counts, instances alive); nothing
//                                   (+ sandbox   else in the data account. The sandbox
//                                   tables when  provider's synthetic resources (its main,
//                                   on)          locator and 32 chart tables: one assignment
//                                                each, 34) only when sandboxEnabled.
//   Storage Blob Data Owner         host account identity-based host storage
//                                                (AzureWebJobsStorage__*) and the Flex
//                                                Consumption deployment container. That
//                                                account holds nothing else: no blob role
//                                                reaches the data account.
//   Storage Table Data Contributor  host account the host's diagnostic events table, which it
//                                                creates itself (AZFD0003 otherwise;
//                                                Azure/azure-functions-host#10995).
//   Monitoring Metrics Publisher    App Insights telemetry with Entra ID auth (local auth off).
//   Log Analytics Reader            workspace    the per-tenant audit export reads the audit
//                                                stream back with the Log Analytics query API
//                                                (manage/tenants/{id}/audit); no built-in
//                                                role reads less (it reads every table of
//                                                the workspace, which holds nothing but this
//                                                deployment's logs).
//
// The optional operator principal (a group, ideally), for the ops CLI and the portal:
//   Key Vault Secrets Officer       vault        register/rotate clients, set provider
//                                                credentials, rotate the signing key.
//   Storage Table Data Contributor  data tables  client records and tenant mappings, and the
//                                                sandbox's tables when the sandbox is on
//                                                (`ops sandbox load`, `ops sandbox migrate`).

@description('Principal id of the app\'s user-assigned managed identity.')
param appPrincipalId string

@description('Object id of the operators\' Entra group (or user) for the ops CLI; empty: none.')
param operatorPrincipalId string

@description('Type of the operator principal; empty: Azure looks it up (any type works).')
@allowed([
  ''
  'Group'
  'User'
  'ServicePrincipal'
])
param operatorPrincipalType string

@description('Name of the Key Vault.')
param keyVaultName string

@description('Name of the data storage account (the tables).')
param storageAccountName string

@description('Name of the Functions host storage account (AzureWebJobsStorage, the package).')
param hostStorageAccountName string

@description('Name of the clients table.')
param clientsTableName string

@description('Name of the tenants table.')
param tenantsTableName string

@description('Name of the expiring table (rows every instance shares: failure counts, instances alive).')
param expiringTableName string

@description('Name of the sandbox table; empty when the sandbox is off (no role is granted then).')
param sandboxTableName string = ''

@description('Names of the sandbox\'s locator and chart tables; empty when the sandbox is off.')
param sandboxDataTableNames array = []

@description('Name of the Application Insights component.')
param applicationInsightsName string

@description('Name of the Log Analytics workspace.')
param workspaceName string

// Built-in role definitions, by GUID (the same in every tenant).
var keyVaultSecretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7' // Key Vault Secrets Officer
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher
var logAnalyticsReader = '73c42c96-874c-492b-b04d-ab87d138a893' // Log Analytics Reader

var withOperator = !empty(operatorPrincipalId)
var withSandbox = !empty(sandboxTableName)
// Omitted, the type is looked up from the directory; only a principal created in the same
// deployment needs it given (replication delay), and operators exist beforehand.
var operatorType = empty(operatorPrincipalType) ? null : operatorPrincipalType

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource hostAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageAccountName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: account
  name: 'default'
}

resource clientsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = {
  parent: tableService
  name: clientsTableName
}

resource tenantsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = {
  parent: tableService
  name: tenantsTableName
}

resource expiringTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = {
  parent: tableService
  name: expiringTableName
}

resource sandboxTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = if (withSandbox) {
  parent: tableService
  name: sandboxTableName
}

resource sandboxDataTables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = [for name in sandboxDataTableNames: {
  parent: tableService
  name: name
}]

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

// The app's identity.

resource appSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficer)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'EHR Bridge app: read secrets (token, proxy) and write them (management API rotation)'
  }
}

resource appClientsTable 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(clientsTable.id, appPrincipalId, storageTableDataContributor)
  scope: clientsTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'EHR Bridge app: client records'
  }
}

resource appTenantsTable 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(tenantsTable.id, appPrincipalId, storageTableDataContributor)
  scope: tenantsTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'EHR Bridge app: tenant mappings'
  }
}

resource appExpiringTable 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(expiringTable.id, appPrincipalId, storageTableDataContributor)
  scope: expiringTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'EHR Bridge app: rows every instance shares (failure counts, instances alive)'
  }
}

resource appSandboxDataTables 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (name, index) in sandboxDataTableNames: {
  name: guid(sandboxDataTables[index].id, appPrincipalId, storageTableDataContributor)
  scope: sandboxDataTables[index]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'EHR Bridge app: the sandbox\'s locator and chart tables (only when the sandbox is on)'
  }
}]

resource appSandboxTable 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (withSandbox) {
  name: guid(sandboxTable.id, appPrincipalId, storageTableDataContributor)
  scope: sandboxTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'EHR Bridge app: sandbox provider resources (only when the sandbox is on)'
  }
}

resource appHostStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostAccount.id, appPrincipalId, storageBlobDataOwner)
  scope: hostAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'EHR Bridge app: Functions host storage and the Flex Consumption deployment container'
  }
}

resource appHostDiagnostics 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostAccount.id, appPrincipalId, storageTableDataContributor)
  scope: hostAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'EHR Bridge app: the Functions host diagnostic events table in host storage'
  }
}

resource appTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appPrincipalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'EHR Bridge app: Application Insights telemetry with Entra ID authentication'
  }
}

resource appAuditReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, appPrincipalId, logAnalyticsReader)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', logAnalyticsReader)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'EHR Bridge app: the per-tenant audit export reads the audit stream from the workspace'
  }
}

// The operators (optional).

resource operatorSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (withOperator) {
  name: guid(vault.id, operatorPrincipalId, keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficer)
    principalId: operatorPrincipalId
    principalType: operatorType
    description: 'EHR Bridge operators: ops CLI (clients, provider credentials, signing key)'
  }
}

resource operatorClientsTable 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (withOperator) {
  name: guid(clientsTable.id, operatorPrincipalId, storageTableDataContributor)
  scope: clientsTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: operatorPrincipalId
    principalType: operatorType
    description: 'EHR Bridge operators: client records'
  }
}

resource operatorTenantsTable 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (withOperator) {
  name: guid(tenantsTable.id, operatorPrincipalId, storageTableDataContributor)
  scope: tenantsTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: operatorPrincipalId
    principalType: operatorType
    description: 'EHR Bridge operators: tenant mappings'
  }
}

resource operatorSandboxDataTables 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (name, index) in sandboxDataTableNames: if (withOperator) {
  name: guid(sandboxDataTables[index].id, operatorPrincipalId, storageTableDataContributor)
  scope: sandboxDataTables[index]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: operatorPrincipalId
    principalType: operatorType
    description: 'EHR Bridge operators: the sandbox\'s locator and chart tables (ops sandbox load, migrate)'
  }
}]

resource operatorSandboxTable 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (withOperator && withSandbox) {
  name: guid(sandboxTable.id, operatorPrincipalId, storageTableDataContributor)
  scope: sandboxTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: operatorPrincipalId
    principalType: operatorType
    description: 'EHR Bridge operators: the sandbox provider\'s synthetic resources (ops sandbox load)'
  }
}
