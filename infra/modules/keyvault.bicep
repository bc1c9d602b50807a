// Key Vault for client secrets (`client-<id>`), the token signing key (`token-signing-key`) and
// provider credentials (`provider-<tenant>`). Access is Azure RBAC only (no access policies),
// deletions are recoverable (soft delete) and a deleted secret cannot be purged early (purge
// protection). Every secret read and write is logged (AuditEvent) to Log Analytics.

@description('Name of the Key Vault (3-24 letters, digits and dashes).')
param name string

@description('Azure region.')
param location string

@description('Tags applied to the vault.')
param tags object

@description('Enabled: reachable over the internet, every call still needs an Entra token and an RBAC role. Disabled: only through private endpoints, which this template does not create (Flex Consumption then needs VNet integration).')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string

@description('Days a deleted secret can be recovered (7-90).')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int

@description('Log Analytics workspace that receives the AuditEvent log.')
param workspaceId string

// A torn-down environment leaves this vault soft-deleted for softDeleteRetentionInDays, and purge
// protection forbids purging it, so re-provisioning the same name fails ("default") until the
// vault is recovered ("recover", which in turn fails when no deleted vault exists). See
// docs/runbook.md 1.5 and the vault's createMode (Microsoft.KeyVault/vaults, "default" | "recover").
@description('default: create the vault. recover: bring back the soft-deleted vault of this name, its secrets included.')
@allowed([
  'default'
  'recover'
])
param createMode string = 'default'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  //checkov:skip=CKV_AZURE_109:the Flex Consumption app has no fixed outbound IP or VNet here, so the firewall cannot be default-deny; RBAC and Entra tokens gate every call (publicNetworkAccess is a parameter)
  //checkov:skip=CKV_AZURE_189:public network access is the publicNetworkAccess parameter; Disabled needs private endpoints and VNet integration that this template does not create
  name: name
  location: location
  tags: tags
  properties: {
    createMode: createMode
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      defaultAction: publicNetworkAccess == 'Enabled' ? 'Allow' : 'Deny'
      bypass: 'None'
    }
  }
}

resource auditToWorkspace 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-log-analytics'
  scope: vault
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'AuditEvent'
        enabled: true
      }
    ]
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri
