// The operators' dashboard: an Azure Monitor workbook over the Log Analytics workspace
// (infra/workbooks/ehr-bridge.workbook.json: requests, latency percentiles and errors per tenant
// and provider, tokens per client and secret version, circuits, throttles, ALERT lines).

@description('Resource id of the Log Analytics workspace the workbook queries.')
param workspaceId string

@description('Azure region.')
param location string

@description('Tags applied to the workbook.')
param tags object

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name is a GUID; this one is stable per resource group.
  name: guid(resourceGroup().id, 'ehr-bridge-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'EHR Bridge operations'
    category: 'workbook'
    sourceId: workspaceId
    serializedData: loadTextContent('../workbooks/ehr-bridge.workbook.json')
  }
}

output id string = workbook.id
