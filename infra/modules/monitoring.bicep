// Log Analytics and workspace-based Application Insights. Local (instrumentation-key)
// authentication is disabled: the app sends telemetry with its managed identity
// (APPLICATIONINSIGHTS_AUTHENTICATION_STRING, Monitoring Metrics Publisher in roles.bicep).

@description('Name of the Log Analytics workspace.')
param logAnalyticsName string

@description('Name of the Application Insights component.')
param applicationInsightsName string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

// The workspace owns retention: a workspace-based component keeps its telemetry in the workspace,
// and the component's own RetentionInDays takes only 30, 60, 90, 120, 180, 270, 365, 550 or 730
// (Microsoft.Insights/components), so it is not set at all. The workspace takes any day count in
// 30-730 on the PerGB2018 tier.
@description('Days Log Analytics keeps the audit trail (traces, Key Vault and table access logs).')
@minValue(30)
@maxValue(730)
param retentionInDays int

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: applicationInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

output workspaceId string = workspace.id
output workspaceName string = workspace.name
// The workspace id the Log Analytics query API takes (the audit export: EHRB_AUDIT_WORKSPACE_ID).
output workspaceCustomerId string = workspace.properties.customerId
output applicationInsightsName string = appInsights.name
output connectionString string = appInsights.properties.ConnectionString
