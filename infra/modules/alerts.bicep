// Log alert rules over the Log Analytics workspace: what an operator must hear about without
// looking (docs/runbook.md 17). Each query returns rows only when its condition holds; a rule
// fires when it returns any. The app's own telemetry (requests, provider calls, metrics, ALERT
// lines) lands in the workspace-based Application Insights tables (AppRequests, AppDependencies,
// AppMetrics, AppTraces); Key Vault and Table Storage write their own logs there too.

@description('Resource id of the Log Analytics workspace the rules query.')
param workspaceId string

@description('Azure region.')
param location string

@description('Tags applied to every rule.')
param tags object

@description('Resource id of an action group to notify; empty: rules fire in the portal only.')
param actionGroupId string

@description('5xx answers, in percent of requests over 5 minutes, above which the app alerts.')
@minValue(1)
@maxValue(100)
param serverErrorPercent int

@description('Failed provider calls of one tenant, in percent over 15 minutes, above which it alerts.')
@minValue(1)
@maxValue(100)
param providerErrorPercent int

@description('95th percentile of one tenant\'s provider calls, in ms over 15 minutes, above which it alerts.')
@minValue(100)
param providerLatencyMs int

@description('Refused token requests of one client in 15 minutes above which it alerts (guessing).')
@minValue(1)
param tokenFailuresPerClient int

@description('Days before the signing key\'s retirement date from which it alerts.')
@minValue(1)
param signingKeyDays int

var rules = [
  {
    name: 'alert-line'
    displayName: 'EHR Bridge: ALERT line (a provider refused our credential, RBAC refused Key Vault, ...)'
    severity: 1
    frequency: 'PT5M'
    window: 'PT5M'
    query: 'AppTraces | where Message startswith "ALERT" | project TimeGenerated, Message, OperationId'
    dimensions: []
  }
  {
    name: 'server-errors'
    displayName: 'EHR Bridge: 5xx rate'
    severity: 1
    frequency: 'PT5M'
    window: 'PT5M'
    query: 'AppRequests | where isnotempty(tostring(Properties["http.route"])) | summarize total = count(), failed = countif(toint(ResultCode) >= 500) | where total >= 20 and failed * 100.0 / total > ${serverErrorPercent}'
    dimensions: []
  }
  {
    name: 'provider-health'
    displayName: 'EHR Bridge: a tenant\'s provider fails or is slow'
    severity: 2
    frequency: 'PT5M'
    window: 'PT15M'
    query: 'AppDependencies | where Type == "HTTP" and Target startswith "provider:" | summarize calls = count(), failed = countif(Success == false), p95 = percentile(DurationMs, 95) by tenant = tostring(Properties["ehrbridge.tenant_id"]) | where calls >= 10 and (failed * 100.0 / calls > ${providerErrorPercent} or p95 > ${providerLatencyMs})'
    dimensions: [
      {
        name: 'tenant'
        operator: 'Include'
        values: [
          '*'
        ]
      }
    ]
  }
  {
    name: 'token-failures'
    displayName: 'EHR Bridge: refused token requests for one client (guessing?)'
    severity: 2
    frequency: 'PT5M'
    window: 'PT15M'
    query: 'AppMetrics | where Name == "ehrbridge.tokens" and tostring(Properties["ehrbridge.outcome"]) == "denied" | summarize failures = sum(Sum) by client = tostring(Properties["ehrbridge.client_id"]) | where failures > ${tokenFailuresPerClient}'
    dimensions: [
      {
        name: 'client'
        operator: 'Include'
        values: [
          '*'
        ]
      }
    ]
  }
  {
    name: 'store-throttling'
    displayName: 'EHR Bridge: Key Vault or Table Storage throttles the app'
    severity: 2
    frequency: 'PT5M'
    window: 'PT15M'
    query: 'union isfuzzy=true (AzureDiagnostics | where ResourceProvider == "MICROSOFT.KEYVAULT" and httpStatusCode_d == 429 | project TimeGenerated, store = "keyvault"), (StorageTableLogs | where StatusCode == 503 or StatusText has "ServerBusy" | project TimeGenerated, store = "tables") | summarize throttled = count() by store'
    dimensions: [
      {
        name: 'store'
        operator: 'Include'
        values: [
          '*'
        ]
      }
    ]
  }
  {
    name: 'signing-key-retirement'
    displayName: 'EHR Bridge: the signing key retires soon (rotate it: docs/runbook.md 7)'
    severity: 2
    frequency: 'PT1H'
    window: 'PT1H'
    query: 'AppMetrics | where Name == "ehrbridge.signing_key.days_left" | summarize days_left = min(Min) | where days_left < ${signingKeyDays}'
    dimensions: []
  }
]

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for rule in rules: {
  name: 'ehrb-${rule.name}'
  location: location
  tags: tags
  properties: {
    displayName: rule.displayName
    severity: rule.severity
    enabled: true
    evaluationFrequency: rule.frequency
    windowSize: rule.window
    scopes: [
      workspaceId
    ]
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: rule.dimensions
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: empty(actionGroupId) ? [] : [
        actionGroupId
      ]
    }
  }
}]

output ruleNames array = [for (rule, i) in rules: alertRules[i].name]
