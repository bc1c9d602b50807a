"""The Azure Functions app: creates the FunctionApp and registers the blueprints. Nothing else."""

import azure.functions as func

from functions import console, health, manage, metadata, proxy, sandbox, token

app = func.FunctionApp()
for blueprint in (metadata.bp, token.bp, manage.bp, health.bp, proxy.bp, sandbox.bp, console.bp):
    app.register_functions(blueprint)
